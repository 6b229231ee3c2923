package postfix

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestTCPTableF14(t *testing.T) { // F-14, PFX-TCP-1..4
	t.Parallel()
	addr := start(t, &TCPTableServer{Name: "tls_policy", Handler: fixtureHandler()})
	c := dialRaw(t, "tcp", addr)
	for _, step := range []struct{ send, want string }{
		{"get example.com\n", "200 " + pfxSTS5Plain + "\n"},
		{"get .example.com\n", "500 not found\n"},
		{"get example.org\n", "400 temporary DNS failure\n"},
		{"get [relay.example.net]:587\n", "200 secure match=relay.example.net servername=hostname\n"},
		{"get EXAMPLE.COM.\n", "200 " + pfxSTS5Plain + "\n"},
		{"get [192.0.2.1]\n", "500 not found\n"},
		// PFX-TCP-2: either hex case; CR tolerated; tabs separate fields.
		{"get %45xample.com\n", "200 " + pfxSTS5Plain + "\n"},
		{"GET\texample%2ecom\r\n", "200 " + pfxSTS5Plain + "\n"},
	} {
		exchange(t, c, step.send, step.want)
	}
}

func TestTCPTableRequests(t *testing.T) { // PFX-TCP-1..4
	t.Parallel()
	var got []string
	gotc := make(chan string, 100)
	addr := start(t, &TCPTableServer{Name: "m", Handler: HandlerFunc(func(ctx context.Context, name, key string) Reply {
		gotc <- name + "|" + key
		switch key {
		case "percent":
			return Found("100% secure")
		case "newline":
			return Found("a\nb\r\x00\x7f { c = d } ü")
		case "long":
			return Found(strings.Repeat("%", 1400)) // 4200 bytes encoded
		case "long-err":
			return TempFail(strings.Repeat("%", 2000))
		case "empty":
			return Reply{Status: StatusOK}
		case "timeout":
			return Reply{Status: StatusTimeout}
		case "perm":
			return Reply{Status: StatusPerm, Data: "config\nerror"}
		case "nf":
			return Reply{Status: StatusNotFound, Data: "no policy"}
		}
		return Found(key)
	})})
	c := dialRaw(t, "tcp", addr)
	for _, step := range []struct{ send, want string }{
		{"get foo%20bar\n", "200 foo bar\n"}, // PFX-TCP-2
		{"get a%25b\n", "200 a%25b\n"},       // decoded to "a%b", re-encoded in the reply
		{"get percent\n", "200 100%25 secure\n"},
		{"get newline\n", "200 a%0Ab%0D%00%7F { c = d } ü\n"}, // PFX-TCP-4
		{"get long\n", "400 internal error: reply too long\n"},
		{"get empty\n", "400 internal error: empty reply\n"},
		{"get timeout\n", "400 timeout\n"},
		{"get perm\n", "400 config%0Aerror\n"},
		{"get nf\n", "500 no policy\n"},
		{"get %C3%BC\n", "200 ü\n"},
		// Requests Postfix never sends (documented on TCPTableServer).
		{"get %zz\n", "400 malformed request: bad hex escape\n"},
		{"get a%2\n", "400 malformed request: bad hex escape\n"},
		{"get\n", "400 malformed request: no key\n"},
		{"get a b\n", "400 malformed request: more than one key\n"},
		{"get %FF\n", "400 malformed request: key is not valid UTF-8\n"},
		{"\n", "400 malformed request: empty line\n"},
		{"put a b\n", "500 unsupported command\n"},
		{"GET / HTTP/1.1\n", "400 malformed request: more than one key\n"},
	} {
		exchange(t, c, step.send, step.want)
	}
	// An error text is cut to fit the 4096-byte reply limit.
	io.WriteString(c, "get long-err\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || len(line) > MaxTCPReplySize || !strings.HasPrefix(line, "400 %25%25") {
		t.Errorf("long error reply: %d bytes, %v", len(line), err)
	}
	close(gotc)
	for s := range gotc {
		got = append(got, s)
	}
	if len(got) == 0 || got[0] != "m|foo bar" || got[1] != "m|a%b" {
		t.Errorf("handler saw %q", got)
	}
}

func TestTCPTableLineLimit(t *testing.T) { // PFX-TCP-1, line cap
	t.Parallel()
	addr := start(t, &TCPTableServer{Handler: fixtureHandler(), MaxRequestSize: 64})
	c := dialRaw(t, "tcp", addr)
	exchange(t, c, "get "+strings.Repeat("a", 59)+"\n", "500 not found\n") // 64 bytes with LF
	go io.WriteString(c, "get "+strings.Repeat("a", 100)+"\n")
	expectClosed(t, c, "400 request too long\n")
}

func TestTCPTablePipelinedAndShutdown(t *testing.T) { // PFX-TCP-5
	t.Parallel()
	srv := &TCPTableServer{Handler: fixtureHandler(), IdleTimeout: time.Minute}
	addr := start(t, srv)
	c := dialRaw(t, "tcp", addr)
	exchange(t, c, "get .example.com\nget example.org\n", "500 not found\n400 temporary DNS failure\n")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	expectClosed(t, c, "")
}

func TestTCPTableIdleTimeout(t *testing.T) {
	t.Parallel()
	addr := start(t, &TCPTableServer{Handler: fixtureHandler(), IdleTimeout: 50 * time.Millisecond})
	expectClosed(t, dialRaw(t, "tcp", addr), "")
}

func TestTCPTableClient(t *testing.T) { // F-14, PFX-TCP-2, PFX-TCP-3
	t.Parallel()
	addr := start(t, &TCPTableServer{Handler: HandlerFunc(func(ctx context.Context, name, key string) Reply {
		if key == "example.org" {
			return TempFail("temporary DNS failure")
		}
		if key == ".example.com" {
			return NotFound()
		}
		return Found("key=" + key)
	})})
	cl, err := DialTCPTable(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for key, want := range map[string]Reply{
		"example.com":        Found("key=example.com"),
		"a b%c\n\x01ü":       Found("key=a b%c\n\x01ü"),
		".example.com":       {StatusNotFound, "not found"},
		"example.org":        {StatusTemp, "temporary DNS failure"},
		"[relay.example]:25": Found("key=[relay.example]:25"),
	} {
		got, err := cl.Get(t.Context(), key)
		if err != nil || got != want {
			t.Errorf("Get(%q) = %+v, %v; want %+v", key, got, err, want)
		}
	}
}

func TestParseTCPReply(t *testing.T) { // PFX-TCP-3, F-14 negative test
	t.Parallel()
	for in, want := range map[string]Reply{
		"200 secure match=a.example:b.example": Found("secure match=a.example:b.example"),
		"200 100%25":                           Found("100%"),
		"250\tx":                               Found("x"),
		"500 not found":                        {StatusNotFound, "not found"},
		"400 ":                                 {StatusTemp, ""},
		"499 later":                            {StatusTemp, "later"},
	} {
		if got, err := ParseTCPReply(in); err != nil || got != want {
			t.Errorf("ParseTCPReply(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	// "500" with no space is malformed (Postfix defers), not "not found".
	for _, in := range []string{"500", "200", "20 x", "2000 x", "a00 x", "300 x", "600 x", "200 %zz", "", " 200 x"} {
		if got, err := ParseTCPReply(in); !errors.Is(err, ErrMalformedReply) {
			t.Errorf("ParseTCPReply(%q) = %+v, %v; want ErrMalformedReply", in, got, err)
		}
	}
}

var quoteCases = map[string]string{
	"example.com": "example.com",
	"foo bar":     "foo%20bar",
	"a%b":         "a%25b",
	"tab\there":   "tab%09here",
	"nl\n":        "nl%0A",
	"ü":           "%C3%BC",
	"\x7f\x00":    "%7F%00",
	"[relay]:587": "[relay]:587",
	"{ a = b }":   "{%20a%20=%20b%20}",
	"":            "",
}

func TestQuoteTCP(t *testing.T) { // PFX-TCP-2
	t.Parallel()
	for in, want := range quoteCases {
		if got := QuoteTCP(in); got != want {
			t.Errorf("QuoteTCP(%q) = %q, want %q", in, got, want)
		}
		if back, err := UnquoteTCP(want); err != nil || back != in {
			t.Errorf("UnquoteTCP(%q) = %q, %v; want %q", want, back, err, in)
		}
	}
	for in, want := range map[string]string{"%2a%2A": "**", "%c3%bc": "ü", "raw ü": "raw ü"} {
		if got, err := UnquoteTCP(in); err != nil || got != want {
			t.Errorf("UnquoteTCP(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"%zz", "%", "%2", "a%g0", "%%"} {
		if _, err := UnquoteTCP(in); !errors.Is(err, ErrMalformedRequest) {
			t.Errorf("UnquoteTCP(%q): err = %v, want ErrMalformedRequest", in, err)
		}
	}
}

// FuzzQuoteTCP checks both encodings round-trip through UnquoteTCP, that a
// quoted key has no whitespace or control bytes (so it stays one field on
// one line), and that UnquoteTCP never panics.
func FuzzQuoteTCP(f *testing.F) {
	for in, q := range quoteCases {
		f.Add(in)
		f.Add(q)
	}
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, s string) {
		q := QuoteTCP(s)
		if strings.ContainsFunc(q, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			t.Fatalf("QuoteTCP(%q) = %q has raw whitespace or non-ASCII", s, q)
		}
		if back, err := UnquoteTCP(q); err != nil || back != s {
			t.Fatalf("UnquoteTCP(QuoteTCP(%q)) = %q, %v", s, back, err)
		}
		var b strings.Builder
		w := bufio.NewWriter(&b)
		appendQuotedData(w, s)
		w.Flush()
		d := b.String()
		if len(d) != quotedDataLen(s) || strings.ContainsAny(d, "\n\r") {
			t.Fatalf("reply encoding of %q = %q (len %d, predicted %d)", s, d, len(d), quotedDataLen(s))
		}
		if back, err := UnquoteTCP(d); err != nil || back != s {
			t.Fatalf("UnquoteTCP(data %q) = %q, %v", d, back, err)
		}
		if tr := truncateQuoted(s, 100); quotedDataLen(tr) > 100 || !strings.HasPrefix(s, tr) {
			t.Fatalf("truncateQuoted(%q) = %q", s, tr)
		}
		UnquoteTCP(s) // must not panic
		ParseTCPReply(s)
	})
}

// FuzzParseReply: both reply parsers never panic, and what they accept
// survives re-encoding by the servers' writers (round trip).
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"OK secure match=a", "NOTFOUND ", "NOTFOUND", "TEMP x", "ok secure", "PERM ", "TIMEOUT t"} {
		f.Add(s)
	}
	for _, s := range []string{"200 secure match=a.example:b.example", "500", "400 ", "500 not found", "200 %zz", "250\tx", "200 100%25"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseSocketmapReply(s); err == nil {
			enc := r.Status.String() + " " + r.Data
			if enc != s && enc != s+" " { // the space may be missing when there is no data
				t.Fatalf("socketmap reply %q re-encodes as %q", s, enc)
			}
		}
		r, err := ParseTCPReply(s)
		if err != nil || len(s) > 1000 { // long error texts are truncated on output
			return
		}
		var b strings.Builder
		w := bufio.NewWriter(&b)
		writeTCPReply(w, r)
		w.Flush()
		line := strings.TrimSuffix(b.String(), "\n")
		back, err := ParseTCPReply(line)
		if r.Data == "" && r.Status != StatusOK {
			back.Data = "" // an empty error text is replaced by a default one
		}
		if err != nil || back != r {
			t.Fatalf("tcp reply %q → %+v → %q → %+v, %v", s, r, line, back, err)
		}
	})
}
