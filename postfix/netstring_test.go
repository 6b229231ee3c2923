package postfix

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

var netstringGood = map[string][]string{
	// PFX-SOCKETMAP-2: the request payload "postfix example.com" is 19 bytes.
	"19:postfix example.com,":              {"postfix example.com"},
	"20:postfix .example.com,":             {"postfix .example.com"}, // PFX-SOCKETMAP-3
	"0:,":                                  {""},
	"9:NOTFOUND ,5:TEMP ,12:OK dane-only,": {"NOTFOUND ", "TEMP ", "OK dane-only"}, // PFX-SOCKETMAP-4
	"3:a,b,":                               {"a,b"},
	"4:\x00\xff:,,":                        {"\x00\xff:,"},
	"10:0123456789,":                       {"0123456789"},
	"1: ,2:  ,":                            {" ", "  "},
	"5:hello,5:world,":                     {"hello", "world"},
	"31:postfix [relay.example.net]:587,":  {"postfix [relay.example.net]:587"},
	"27:QUERYwithTLSRPT example.com,":      {"QUERYwithTLSRPT example.com"},
	"20:postfix EXAMPLE.COM.,":             {"postfix EXAMPLE.COM."},
	"12:OK dane-only,9:NOTFOUND ,12:OK dane-only,0:,": {"OK dane-only", "NOTFOUND ", "OK dane-only", ""},
}

var netstringBad = map[string]error{
	"19:postfix example.com;": ErrNetstringSyntax, // PFX-SOCKETMAP-2: bad terminator
	"19:postfix example.com":  io.ErrUnexpectedEOF,
	"1x:a,":                   ErrNetstringSyntax, // non-digit in the length
	"x:a,":                    ErrNetstringSyntax,
	"+1:a,":                   ErrNetstringSyntax, // sign
	"-1:a,":                   ErrNetstringSyntax,
	" 1:a,":                   ErrNetstringSyntax, // space
	"1 :a,":                   ErrNetstringSyntax,
	"01:a,":                   ErrNetstringSyntax, // leading zero
	"00:,":                    ErrNetstringSyntax,
	":a,":                     ErrNetstringSyntax, // no digits
	"10001:":                  ErrNetstringTooLong,
	"99999999999999999999:":   ErrNetstringTooLong, // huge: refused before reading the payload
	"123":                     io.ErrUnexpectedEOF,
	"3:ab":                    io.ErrUnexpectedEOF,
	"3:abc":                   io.ErrUnexpectedEOF, // missing comma at EOF
	"3:abcd":                  ErrNetstringSyntax,
}

func readAll(t testing.TB, in string, max int) ([]string, error) {
	t.Helper()
	nr := NewNetstringReader(strings.NewReader(in), max)
	var out []string
	for range len(in) + 1 { // bounded: every frame consumes at least 3 bytes
		p, err := nr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(p))
	}
	t.Fatalf("reader did not terminate on %q", in)
	return nil, nil
}

func TestNetstringGood(t *testing.T) { // PFX-SOCKETMAP-2, GO-11
	t.Parallel()
	for in, want := range netstringGood {
		got, err := readAll(t, in, 0)
		if err != nil || !equalStrings(got, want) {
			t.Errorf("read %q = %q, %v; want %q", in, got, err, want)
		}
		var enc []byte
		for _, p := range want {
			enc = AppendNetstring(enc, p)
		}
		if string(enc) != in {
			t.Errorf("AppendNetstring(%q) = %q, want %q", want, enc, in)
		}
		var buf bytes.Buffer
		nw := NewNetstringWriter(&buf)
		for _, p := range want {
			if err := nw.WriteString(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := nw.Flush(); err != nil || buf.String() != in {
			t.Errorf("NetstringWriter wrote %q, %v; want %q", buf.String(), err, in)
		}
	}
}

func TestNetstringBad(t *testing.T) { // PFX-SOCKETMAP-2, PFX-SOCKETMAP-8, GO-11
	t.Parallel()
	for in, want := range netstringBad {
		_, err := readAll(t, in, 0)
		if !errors.Is(err, want) {
			t.Errorf("read %q: err = %v, want %v", in, err, want)
		}
	}
}

func TestNetstringCapIsConfigurable(t *testing.T) { // GO-11
	t.Parallel()
	if _, err := readAll(t, "5:hello,", 4); !errors.Is(err, ErrNetstringTooLong) {
		t.Errorf("cap 4: err = %v, want ErrNetstringTooLong", err)
	}
	if got, err := readAll(t, "5:hello,", 5); err != nil || len(got) != 1 {
		t.Errorf("cap 5: %q, %v", got, err)
	}
	// A 1 MB payload with a large cap works, and the buffer is reused.
	big := strings.Repeat("x", 1<<20)
	if got, err := readAll(t, string(AppendNetstring(nil, big)), 1<<20); err != nil || len(got) != 1 || got[0] != big {
		t.Errorf("1 MB frame: err = %v", err)
	}
}

func TestNetstringMultiWrite(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	nw := NewNetstringWriter(bw)
	nw.WriteString("OK", " ", "secure")
	nw.Flush()
	if buf.String() != "9:OK secure," {
		t.Errorf("got %q", buf.String())
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzNetstring checks that the reader never panics, that what it accepts
// re-encodes to exactly the bytes it consumed, and that encoding any payload
// reads back (round trip).
func FuzzNetstring(f *testing.F) {
	for in := range netstringGood {
		f.Add([]byte(in))
	}
	for in := range netstringBad {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readAll(t, string(in), 1000)
		var enc []byte
		for _, p := range got {
			enc = AppendNetstring(enc, p)
		}
		if !bytes.HasPrefix(in, enc) {
			t.Fatalf("accepted frames %q do not re-encode to a prefix of %q", got, in)
		}
		if err == nil && len(enc) != len(in) {
			t.Fatalf("clean EOF but only %d of %d bytes consumed", len(enc), len(in))
		}
		if len(in) <= 1000 {
			back, err := readAll(t, string(AppendNetstring(nil, string(in))), 1000)
			if err != nil || len(back) != 1 || back[0] != string(in) {
				t.Fatalf("round trip of %q: %q, %v", in, back, err)
			}
		}
	})
}
