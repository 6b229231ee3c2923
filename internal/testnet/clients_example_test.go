package testnet_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
)

// A mail client of the default scenario's good client host: IMAP with
// implicit TLS on the port the network picked for imaps, verified against
// the test CA for the name the client uses (RFC 8314 §5).
func ExampleNet_ClientPort() {
	n, err := testnet.Start(context.Background(), testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()

	const host = "mail.clients.example"
	addr, _ := n.MXAddr(host) // the address its A record gives
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(n.ClientPort(testnet.ServiceIMAPS))),
		&tls.Config{ServerName: host, RootCAs: n.RootCAs()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	greeting, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.TrimSpace(greeting))
	// Output: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] mail.clients.example IMAP testnet ready
}
