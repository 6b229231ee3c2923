package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing/libtlsrpt/libtlsrpttest"
)

// peerSource is where the smoke test looks for sys4/tlsrpt-reporter: the
// environment variable, else the snapshot the tool library fetches.
func peerSource() string {
	if s := os.Getenv("MAILSTS_TLSRPT_REPORTER_SRC"); s != "" {
		return s
	}
	return "/work/.mirror/sys4+tlsrpt-reporter/repo"
}

// buildMailsts builds the binary the bench runs.
func buildMailsts(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailsts")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mailsts")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var lostRE = regexp.MustCompile(`(?m)^  (.+?) +\d+ committed/s.* lost (\d+) of (\d+)$`)

// TestFlatOutSmoke runs the side-by-side comparison on a few hundred
// datagrams: every receiver must store every datagram. The peer takes
// part when python3 and its source are here; it is skipped, saying why,
// otherwise (its source is a snapshot that CI machines need not have).
func TestFlatOutSmoke(t *testing.T) {
	c := config{n: 400, senders: 1, domains: 50, rounds: 1, timeout: time.Minute, anchor: true}
	c.bin = buildMailsts(t)
	want := []string{"minimal Go reader", "mailsts tlsrpt collect"}
	_, pyErr := exec.LookPath("python3")
	src := peerSource()
	_, srcErr := os.Stat(src)
	switch {
	case pyErr != nil:
		t.Log("tlsrpt-collectd left out: python3 is not installed")
	case srcErr != nil:
		t.Logf("tlsrpt-collectd left out: no sys4/tlsrpt-reporter source at %s (set MAILSTS_TLSRPT_REPORTER_SRC to a checkout or git directory)", src)
	default:
		c.collectd = src
		want = append(want, "tlsrpt-collectd")
	}
	var out bytes.Buffer
	if err := run(c, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	got := map[string]bool{}
	for _, m := range lostRE.FindAllStringSubmatch(out.String(), -1) {
		got[m[1]] = true
		if m[2] != "0" || m[3] != "400" {
			t.Errorf("%s: lost %s of %s", m[1], m[2], m[3])
		}
	}
	for _, w := range want {
		found := false
		for g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("no summary for %s in\n%s", w, out.String())
		}
	}
	if c.collectd == "" {
		t.Skip("ran without the peer (see the log above for why)")
	}
}

// TestPeerUnderstandsDatagrams checks on the peer's own database that it
// took the bench's datagrams as libtlsrpt's: one policy each, one failure
// in five, each failure detail stored.
func TestPeerUnderstandsDatagrams(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed: tlsrpt-collectd cannot run")
	}
	src := peerSource()
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no sys4/tlsrpt-reporter source at %s (set MAILSTS_TLSRPT_REPORTER_SRC to a checkout or git directory)", src)
	}
	dir := t.TempDir()
	p, err := preparePeer(src, dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.start(dir, "t", 0)
	if err != nil {
		t.Fatalf("python3 is here but tlsrpt-collectd does not run: %v", err)
	}
	const n = 250
	r, err := flatOut(d, libtlsrpttest.Mix(n, 20), 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.final != n {
		t.Fatalf("tlsrpt-collectd stored %d of %d datagrams", r.final, n)
	}
	db, err := roDB(filepath.Join(dir, "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var failed, details int64
	if err := db.QueryRow(`SELECT SUM(cntrfailure) FROM finalresults`).Scan(&failed); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT SUM(cntr) FROM failures`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if failed != n/5 || details != n/5 {
		t.Errorf("failed sessions %d, failure details %d; want %d each", failed, details, n/5)
	}
}

// TestLogFollowSmoke follows a generated log of a few thousand lines; runLog
// fails unless the follower finds exactly the sessions the log holds.
func TestLogFollowSmoke(t *testing.T) {
	var out bytes.Buffer
	if err := runLog(5000, 140, 1, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "lines/s") {
		t.Errorf("%s", out.String())
	}
}

// TestOfferDropsWhenFull checks the ladder's sender: with nobody reading,
// a non-blocking sendto is refused once the queue is full, and counted.
func TestOfferDropsWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tried, refused, err := offer(path, libtlsrpttest.Mix(10, 2), 20000, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if tried != 1000 || refused == 0 || refused == tried {
		t.Errorf("tried %d, refused %d: want 1000 tried, some (not all) refused", tried, refused)
	}
}
