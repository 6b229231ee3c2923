package testnet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
)

// ScriptedServer: the greeting, a reply by the first word (POP3) or the
// second (IMAP after its tag), and the end at a line it has no reply for.
func TestScriptedServer(t *testing.T) {
	t.Parallel()
	port := ScriptedServer(t, "* OK hi\r\n", map[string]string{"CAPA": "+OK\r\n.\r\n", "CAPABILITY": "* CAPABILITY X\r\na1 OK\r\n"})
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	expect := func(want string) {
		t.Helper()
		if l, err := br.ReadString('\n'); l != want || err != nil {
			t.Fatalf("read %q, %v; want %q", l, err, want)
		}
	}
	expect("* OK hi\r\n")
	fmt.Fprint(conn, "capa\r\n")
	expect("+OK\r\n")
	expect(".\r\n")
	fmt.Fprint(conn, "a1 capability\r\n")
	expect("* CAPABILITY X\r\n")
	expect("a1 OK\r\n")
	fmt.Fprint(conn, "a2 NOOP\r\n")
	if b, err := io.ReadAll(br); len(b) != 0 || err != nil {
		t.Errorf("after an unknown command: %q, %v; want the connection closed", b, err)
	}
}
