package dnsresolve

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogValues(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	var f Fake
	_, ans, err := f.LookupTXT(t.Context(), "nx.example")
	l.Info("lookup", "answer", ans, "err", err,
		"mx", MX{10, "mx.example"}, "tlsa", TLSA{3, 1, 1, []byte{0xab}})
	got := buf.String()
	for _, want := range []string{
		"answer.authenticated=false", "answer.canonical_name=nx.example.",
		"err.name=nx.example", "err.type=TXT", "err.rcode=3", "err.server=fake",
		"mx.pref=10", "mx.host=mx.example", "tlsa.usage=3", "tlsa.data=ab",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}

func TestClientLogsFailedAttempts(t *testing.T) {
	t.Parallel()
	_, _, addr := newTestClient(t)
	var buf syncBuffer
	c := &Client{Servers: []string{addr}, Attempts: 2,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	_, _, _ = c.LookupTXT(t.Context(), "servfail.test")
	if got := buf.String(); strings.Count(got, "dns attempt failed") != 2 || !strings.Contains(got, "SERVFAIL") {
		t.Errorf("log: %s", got)
	}
}
