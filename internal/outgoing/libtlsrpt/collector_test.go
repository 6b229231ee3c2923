package libtlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/watchdog"
	"github.com/mailsts/mailsts/tlsrpt"
)

type memRecorder struct {
	mu  sync.Mutex
	got []outgoing.Result
	err error
}

func (m *memRecorder) Record(_ context.Context, r outgoing.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.got = append(m.got, r)
	return nil
}

// socketPath is a short path: Unix socket names are limited to 107 bytes.
func socketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "trc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

func send(t *testing.T, path string, dgrams ...string) {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, d := range dgrams {
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
}

func waitStats(t *testing.T, c *Collector, cond func(Stats) bool) Stats {
	t.Helper()
	for range 1000 {
		if s := c.Stats(); cond(s) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("stats never reached: %+v", c.Stats())
	return Stats{}
}

// Over the socket: good datagrams are recorded; malformed, other-version
// and oversized ones are counted and the collector carries on.
func TestCollectorSocket(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, 0o666); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	os.Remove(path)
	conn, err := Listen(path, 0o622)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o622 {
		t.Errorf("socket mode %v %v", fi.Mode(), err)
	}
	rec := &memRecorder{}
	c := &Collector{Recorder: rec, MaxDatagram: 4096}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, conn) }()
	send(t, path, stsExample, "garbage", `{"dpv": "2"}`, strings.Repeat("x", 5000), tlsaSuccess, twoPolicies,
		`{"d": "x.example","policies":[{"policy-type":9,"f":0}]}`)
	s := waitStats(t, c, func(s Stats) bool { return s.Datagrams == 7 })
	want := Stats{Datagrams: 7, Sessions: 5, Malformed: 1, OtherVersion: 1, TooLarge: 1, NoVersion: 1}
	if s != want {
		t.Errorf("stats = %+v\nwant    %+v", s, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	// A second Listen removes the stale socket file.
	conn2, err := Listen(path, 0o666)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	conn2.Close()
}

// gatedRecorder holds every Record until open is closed.
type gatedRecorder struct {
	memRecorder
	open chan struct{}
}

func (g *gatedRecorder) Record(ctx context.Context, r outgoing.Result) error {
	<-g.open
	return g.memRecorder.Record(ctx, r)
}

// The socket is read while the handler is held up (the kernel's queue of
// a Unix datagram socket is 10 datagrams by default: blocking sends of 50
// finish only when something reads them), and every datagram read is
// handled before Serve returns, even when ctx has ended meanwhile.
func TestCollectorReadsWhileHandling(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	conn, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	rec := &gatedRecorder{open: make(chan struct{})}
	c := &Collector{Recorder: rec}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, conn) }()
	const n = 50
	dgrams := make([]string, n)
	for i := range dgrams {
		dgrams[i] = stsExample
	}
	watchdog.Within(t, time.Minute, func() struct{} { send(t, path, dgrams...); return struct{}{} })
	cancel()
	close(rec.open)
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	rec.mu.Lock()
	got := len(rec.got)
	rec.mu.Unlock()
	if got != n {
		t.Errorf("recorded %d of %d datagrams read", got, n)
	}
}

// A Recorder that refuses or drops: counted, never fatal.
func TestCollectorCountsRecorderRefusals(t *testing.T) {
	t.Parallel()
	rec := &memRecorder{err: outgoing.ErrDropped}
	c := &Collector{Recorder: rec}
	c.Handle(context.Background(), []byte(twoPolicies))
	rec.err = outgoing.ErrInvalidResult
	c.Handle(context.Background(), []byte(noPolicy))
	if s := c.Stats(); s.Dropped != 2 || s.Invalid != 1 || s.Sessions != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// End to end: datagrams through the real Recorder and Store, built by the
// Builder into the day's report.
func TestCollectorToReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := outgoing.OpenSQLite(ctx, filepath.Join(t.TempDir(), "send.db"), outgoing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := outgoing.NewRecorder(st, outgoing.RecorderOptions{})
	day := time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
	c := &Collector{Recorder: rec, Now: func() time.Time { return day }}
	for range 3 {
		c.Handle(ctx, []byte(stsExample))
	}
	c.Handle(ctx, []byte(tlsaSuccess))
	// A policy line that is not an RFC 8460 §4.5 line: counted invalid.
	c.Handle(ctx, []byte(`{"dpv": "1","d": "company-y.example","policies":[{"policy-type":1,"policy-string":["not tlsa"],"f":0}]}`))
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Sessions != 4 || s.Invalid != 1 {
		t.Fatalf("stats = %+v", s)
	}
	var got outgoing.BuiltReport
	b := &outgoing.Builder{Store: st, OrganizationName: "Sender", ContactInfo: "tlsrpt@sender.example",
		Now:  func() time.Time { return day.Add(24 * time.Hour) },
		Sink: outgoing.SinkFunc(func(_ context.Context, r outgoing.BuiltReport) error { got = r; return nil })}
	if s, err := b.RunOnce(ctx); err != nil || s.Built != 1 {
		t.Fatalf("RunOnce = %+v %v", s, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(got.Body))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(zr)
	r, err := tlsrpt.ParseStrict(js)
	if err != nil {
		t.Fatal(err)
	}
	succ, fail := r.Totals()
	if succ != 1 || fail != 3 || len(r.Policies) != 2 {
		t.Errorf("report totals %d/%d, policies %d:\n%s", succ, fail, len(r.Policies), js)
	}
	for _, p := range r.Policies {
		if p.Policy.Type == "sts" && (len(p.FailureDetails) != 2 || p.FailureDetails[0].FailedSessionCount != 3) {
			t.Errorf("sts details = %+v", p.FailureDetails)
		}
	}
}
