package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/internal/outgoing/postfixlog"
	"github.com/mailsts/mailsts/tlsrpt"
)

// logCounts is what a generated log holds, as postfixlog counts it.
type logCounts struct {
	lines, sessions, failures int64
}

// genLog writes at least n lines of a Postfix 3.7 mail log (the line
// shapes of internal/outgoing/postfixlog/testdata): per message the
// pickup, cleanup and qmgr lines, then one of these deliveries by an
// smtp(8) process from a pool of 50 (Postfix reuses them), then qmgr's
// "removed", with smtpd connection noise between messages:
//
//   - 60%: Verified TLS to an MTA-STS domain's MX, 1–3 recipients (success)
//   - 10%: Trusted or Untrusted TLS to a no-policy domain (success)
//   - 8%: certificate verification failure (expired, name mismatch,
//     untrusted issuer, self-signed), deferred (failure)
//   - 4%: "TLS is required, but was not offered" (failure)
//   - 4%: the first MX fails verification, the second delivers (failure and
//     success)
//   - 10%: delivery without TLS to a plain domain (not a TLS session)
//   - 4%: connection timed out, relay=none (not a session)
//
// Domains of each kind are distinct, so no smtp process's state from one
// kind of delivery meets a host of another kind. It returns the counts a
// correct follower must find.
func genLog(w io.Writer, n, domains int, start time.Time) (logCounts, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var c logCounts
	t := start
	line := func(prog string, pid int, format string, a ...any) {
		fmt.Fprintf(bw, "%s mail postfix/%s[%d]: %s\n", t.Format(time.Stamp), prog, pid, fmt.Sprintf(format, a...))
		c.lines++
	}
	const tlsTail = ": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256"
	verifies := []string{"num=10:certificate has expired", "num=62:hostname mismatch", "num=20:unable to get local issuer certificate", "num=18:self-signed certificate"}
	perKind := max(domains/7, 1)
	for msg := 0; c.lines < int64(n); msg++ {
		t = t.Add(50 * time.Millisecond)
		qid := fmt.Sprintf("4D%09X", msg)
		pid := 2000 + msg%50
		kind := msg % 50
		d := msg % perKind
		line("smtpd", 3000+msg%20, "connect from client%d.example.org[203.0.113.%d]", msg%97, msg%250+1)
		line("pickup", 1990, "%s: uid=1000 from=<user%d>", qid, msg%300)
		line("cleanup", 1995, "%s: message-id=<%d.%d@sender.example>", qid, msg, start.Unix())
		rcpts := msg%3 + 1
		line("qmgr", 1998, "%s: from=<user%d@sender.example>, size=%d, nrcpt=%d (queue active)", qid, msg%300, 1500+msg%9000, rcpts)
		deliver := func(dom, host, ip, status, text string, k int) {
			for r := range k {
				line("smtp", pid, "%s: to=<rcpt%d@%s>, relay=%s[%s]:25, delay=0.42, delays=0.05/0.01/0.21/0.15, dsn=%s, status=%s (%s)",
					qid, r, dom, host, ip, map[string]string{"sent": "2.0.0", "deferred": "4.7.5"}[status], status, text)
			}
		}
		switch {
		case kind < 30: // MTA-STS domain, verified
			dom := fmt.Sprintf("sts%05d.example", d)
			host, ip := "mx1."+dom, fmt.Sprintf("192.0.2.%d", d%250+1)
			line("smtp", pid, "Verified TLS connection established to %s[%s]:25%s", host, ip, tlsTail)
			deliver(dom, host, ip, "sent", "250 2.0.0 Ok: queued as 4DqK2y0Lk1z1x", rcpts)
			c.sessions++
		case kind < 35: // no policy, opportunistic TLS
			dom := fmt.Sprintf("plain%05d.example", d)
			host, ip := "mx."+dom, fmt.Sprintf("198.51.100.%d", d%250+1)
			level := "Trusted"
			if msg%2 == 0 {
				level = "Untrusted"
			}
			line("smtp", pid, "%s TLS connection established to %s[%s]:25%s", level, host, ip, tlsTail)
			deliver(dom, host, ip, "sent", "250 OK", rcpts)
			c.sessions++
		case kind < 39: // certificate failure
			dom := fmt.Sprintf("bad%05d.example", d)
			host, ip := "mx1."+dom, fmt.Sprintf("192.0.2.%d", d%250+1)
			line("smtp", pid, "server certificate verification failed for %s[%s]:25: %s", host, ip, verifies[msg%len(verifies)])
			line("smtp", pid, "Untrusted TLS connection established to %s[%s]:25%s", host, ip, tlsTail)
			deliver(dom, host, ip, "deferred", "Server certificate not verified", rcpts)
			c.sessions++
			c.failures++
		case kind < 41: // STARTTLS stripped
			dom := fmt.Sprintf("strip%05d.example", d)
			host, ip := "mx."+dom, fmt.Sprintf("203.0.113.%d", d%250+1)
			deliver(dom, host, ip, "deferred", "TLS is required, but was not offered by host "+host+"["+ip+"]", rcpts)
			c.sessions++
			c.failures++
		case kind < 43: // first MX fails, second delivers
			dom := fmt.Sprintf("partial%05d.example", d)
			ip1, ip2 := fmt.Sprintf("192.0.2.%d", d%250+1), fmt.Sprintf("192.0.2.%d", (d+1)%250+1)
			line("smtp", pid, "certificate verification failed for mx1.%s[%s]:25: self-signed certificate", dom, ip1)
			line("smtp", pid, "Untrusted TLS connection established to mx1.%s[%s]:25%s", dom, ip1, tlsTail)
			line("smtp", pid, "%s: Server certificate not verified", qid)
			line("smtp", pid, "Verified TLS connection established to mx2.%s[%s]:25%s", dom, ip2, tlsTail)
			deliver(dom, "mx2."+dom, ip2, "sent", "250 2.0.0 OK queued", rcpts)
			c.sessions += 2
			c.failures++
		case kind < 48: // no TLS at all
			dom := fmt.Sprintf("clear%05d.example", d)
			deliver(dom, "mx."+dom, fmt.Sprintf("198.51.100.%d", d%250+1), "sent", "250 OK", rcpts)
		default: // unreachable
			dom := fmt.Sprintf("down%05d.example", d)
			line("smtp", pid, "%s: to=<rcpt0@%s>, relay=none, delay=30, delays=0.01/0/30/0, dsn=4.4.1, status=deferred (connect to mx.%s[192.0.2.99]:25: Connection timed out)", qid, dom, dom)
		}
		line("qmgr", 1998, "%s: removed", qid)
		line("smtpd", 3000+msg%20, "disconnect from client%d.example.org[203.0.113.%d] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7", msg%97, msg%250+1)
	}
	return c, bw.Flush()
}

// runLog generates the log, then follows it from its start with a
// postfixlog.Follower joined with policyd's answers (an MTA-STS policy for
// the sts and partial domains) into a fresh SQLite store, until every
// line is read and every result committed.
func runLog(n, domains, rounds int, out io.Writer) error {
	dir, err := os.MkdirTemp("", "blog")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	path := filepath.Join(dir, "mail.log")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	want, err := genLog(f, n, domains, now.Add(-20*time.Hour))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fi, _ := os.Stat(path)
	fmt.Fprintf(out, "postfix log: %d lines (%.1f MiB), %d sessions of which %d failures expected\n", want.lines, float64(fi.Size())/(1<<20), want.sessions, want.failures)
	var rates, cpus []float64
	for round := 1; round <= rounds; round++ {
		rate, cpu, err := followOnce(ctx, dir, path, fmt.Sprintf("send%d.db", round), domains, now, want, out)
		if err != nil {
			return err
		}
		rates, cpus = append(rates, rate), append(cpus, cpu)
	}
	fmt.Fprintf(out, "over %d rounds (median, min–max): %s lines/s, %s µs CPU per line\n", rounds, spread(rates, "%.0f"), spread(cpus, "%.2f"))
	return nil
}

// followOnce follows the log once into a fresh store and checks what it
// counted; it returns lines per second (to the last result committed)
// and CPU µs per line.
func followOnce(ctx context.Context, dir, path, dbName string, domains int, now time.Time, want logCounts, out io.Writer) (float64, float64, error) {
	st, err := outgoing.OpenSQLite(ctx, filepath.Join(dir, dbName), outgoing.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	var answers []outgoing.Answer
	for d := range max(domains/7, 1) {
		for _, dom := range []string{fmt.Sprintf("sts%05d.example", d), fmt.Sprintf("partial%05d.example", d)} {
			answers = append(answers, outgoing.Answer{Domain: dom, Time: now, Answer: "ok_secure", Policy: outgoing.Policy{Type: tlsrpt.PolicyTypeSTS,
				Strings: []string{"version: STSv1", "mode: enforce", "mx: *." + dom, "max_age: 604800"}, MXHosts: []string{"*." + dom}}})
		}
	}
	if err := st.PutAnswers(ctx, answers); err != nil {
		return 0, 0, err
	}
	rec := outgoing.NewRecorder(st, outgoing.RecorderOptions{MaxWait: 2 * time.Second})
	fol := &postfixlog.Follower{Path: path, Recorder: rec, Answers: st, FromStart: true, Poll: 10 * time.Millisecond, Location: time.UTC}
	runtime.GC()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fol.Run(fctx) }()
	for fol.Stats().Lines < uint64(want.lines) {
		select {
		case err := <-done:
			cancel()
			return 0, 0, fmt.Errorf("follower stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	read := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		return 0, 0, err
	}
	if err := rec.Close(ctx); err != nil {
		return 0, 0, err
	}
	el := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime)-syscall.TimevalToNsec(ru0.Utime)) +
		time.Duration(syscall.TimevalToNsec(ru1.Stime)-syscall.TimevalToNsec(ru0.Stime))
	s, rs := fol.Stats(), rec.Stats()
	var stored int64
	rdb, err := roDB(filepath.Join(dir, dbName))
	if err != nil {
		return 0, 0, err
	}
	defer rdb.Close()
	if err := rdb.QueryRowContext(ctx, `SELECT COALESCE(SUM(successful + failed), 0) FROM outgoing_policies`).Scan(&stored); err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(out, "follower: read every line in %.2f s (%.0f lines/s), committed in %.2f s (%.0f lines/s); CPU %.2f s (%.2f µs per line, process total)\n",
		read.Seconds(), float64(want.lines)/read.Seconds(), el.Seconds(), float64(want.lines)/el.Seconds(), cpu.Seconds(), float64(cpu.Microseconds())/float64(want.lines))
	fmt.Fprintf(out, "counted: lines %d, sessions %d, failures %d, unjoined %d, refused %d; recorder written %d, dropped %d; stored sessions %d\n",
		s.Lines, s.Sessions, s.Failures, s.Unjoined, s.Refused, rs.Written, rs.Dropped, stored)
	if int64(s.Sessions) != want.sessions || int64(s.Failures) != want.failures || stored != want.sessions {
		return 0, 0, fmt.Errorf("the follower counted %d sessions (%d failures) and stored %d; the log holds %d (%d failures)",
			s.Sessions, s.Failures, stored, want.sessions, want.failures)
	}
	return float64(want.lines) / el.Seconds(), float64(cpu.Microseconds()) / float64(want.lines), nil
}
