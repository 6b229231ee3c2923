package postfixlog

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// Recorder takes the results (outgoing.Recorder).
type Recorder interface {
	Record(ctx context.Context, r outgoing.Result) error
}

// Answers finds the policy policyd answered for a domain
// (outgoing.Store.AnswerFor).
type Answers interface {
	AnswerFor(ctx context.Context, domain string) (outgoing.Answer, bool, error)
}

// Stats count what a Follower did.
type Stats struct {
	Lines     uint64 // lines read
	Sessions  uint64 // results recorded (successes and failures)
	Failures  uint64 // of which failures
	Unjoined  uint64 // sessions whose policy cannot be reported (DANE without its records)
	Refused   uint64 // results the Recorder refused or dropped
	Rotations uint64 // log files followed across rotation or truncation
}

// Follower follows a Postfix log file across rotation (rename and
// create, or copytruncate) and records each smtp(8) delivery attempt.
type Follower struct {
	Path     string
	Recorder Recorder
	// Answers joins a domain with policyd's answer; nil means every
	// domain has no policy (no-policy-found).
	Answers Answers
	// FromStart reads the file from its beginning; otherwise from its
	// end at start.
	FromStart bool
	// Poll is how often the end of the file is checked; 0 means 250 ms.
	Poll time.Duration
	// ReportMessageID, when set, tells the Message-IDs of the TLS reports
	// this site sends by mail (outbox.IsReportMessageID): the sessions
	// that deliver them are recorded as report deliveries, which the
	// Recorder never counts, so sending a report never causes one.
	ReportMessageID func(id string) bool
	// Location of syslog time stamps without a zone; nil is UTC.
	Location *time.Location
	// Now dates year-less time stamps and lines without one; nil is
	// time.Now.
	Now    func() time.Time
	Logger *slog.Logger

	// priming: lines rebuild the joiner's state and record nothing
	// (Journal re-reading what it stored before a restart).
	priming                                                 bool
	procs                                                   map[string]*proc
	reportQueue                                             map[string]bool // queue ids of report mail
	answers                                                 map[string]cachedAnswer
	lines, sessions, failures, unjoined, refused, rotations atomic.Uint64
}

type proc struct {
	level, host string
	ip          string
	verify      *Line
	counted     bool
	lastKey     string // queue id and host of the last counted non-TLS attempt
	// pending is a failed attempt to one MX host ("QUEUEID: Server
	// certificate not verified"), recorded when the queue id's delivery
	// line names the domain.
	pending       *Line
	pendingVerify *Line
}

type cachedAnswer struct {
	a     outgoing.Answer
	found bool
	at    time.Time
}

// Caps on the joiner's memory.
const (
	maxProcs   = 4096
	maxAnswers = 10000
	// maxReportQueue bounds the queue ids of report mail remembered until
	// their deliveries are logged (a site sends a few hundred a day).
	maxReportQueue = 10000
	answerTTL      = time.Minute
	// missTTL is how long "no answer" is believed: policyd writes a new
	// domain's answer at once, and it may land just after the first
	// session's lines are read.
	missTTL = time.Second
)

// Stats returns the counters.
func (f *Follower) Stats() Stats {
	return Stats{Lines: f.lines.Load(), Sessions: f.sessions.Load(), Failures: f.failures.Load(),
		Unjoined: f.unjoined.Load(), Refused: f.refused.Load(), Rotations: f.rotations.Load()}
}

func (f *Follower) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Follower) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// HandleLine processes one log line. Not safe for concurrent use.
func (f *Follower) HandleLine(ctx context.Context, s string) {
	f.lines.Add(1)
	if f.procs == nil {
		f.procs = map[string]*proc{}
		f.answers = map[string]cachedAnswer{}
		f.reportQueue = map[string]bool{}
	}
	l, ok := Parse(s, f.now().Year(), f.Location)
	if !ok {
		return
	}
	if l.Kind == KindMessageID {
		if f.ReportMessageID != nil && f.ReportMessageID(l.Text) {
			if len(f.reportQueue) >= maxReportQueue {
				clear(f.reportQueue) // bounded; a few deliveries may then count
			}
			f.reportQueue[l.QueueID] = true
		}
		return
	}
	p := f.procs[l.PID]
	if p == nil {
		if len(f.procs) >= maxProcs {
			clear(f.procs) // bounded: old processes' state goes
		}
		p = &proc{}
		f.procs[l.PID] = p
	}
	switch l.Kind {
	case KindVerify:
		v := l
		p.verify = &v
	case KindTLS:
		if p.verify != nil && p.verify.Host != l.Host {
			p.verify = nil
		}
		p.level, p.host, p.ip, p.counted = l.Level, l.Host, l.IP, false
	case KindAttempt:
		if p.level != "" && !p.counted {
			a := l
			a.Host, a.IP, a.Status = p.host, p.ip, "deferred"
			p.pending, p.pendingVerify, p.counted = &a, p.verifyFor(p.host), true
		}
	case KindDelivery:
		if a := p.pending; a != nil {
			p.pending = nil
			defer func() { p.pendingVerify = nil }()
			if a.QueueID == l.QueueID {
				a.Domain, a.Time = l.Domain, l.Time
				f.record(ctx, *a, "", p.pendingVerify, "")
			}
		}
		f.delivery(ctx, p, l)
	}
}

func (f *Follower) delivery(ctx context.Context, p *proc, l Line) {
	inSession := p.level != "" && p.host == l.Host
	if inSession && p.counted {
		return // another recipient of the same session
	}
	key := l.QueueID + " " + l.Host
	if !inSession && p.lastKey == key {
		return
	}
	level := ""
	if inSession {
		level = p.level
	}
	verify := p.verifyFor(l.Host)
	rt, counted := Outcome(l, level, verify)
	if !counted {
		return
	}
	if inSession {
		p.counted = true
	} else {
		p.lastKey = key
	}
	p.verify = nil
	f.record(ctx, l, rt, verify, level)
}

func (p *proc) verifyFor(host string) *Line {
	if p.verify != nil && p.verify.Host == host {
		return p.verify
	}
	return nil
}

// record records the session of line l: a success when rt is "" and l is
// a delivery, else a failure (rt, or the outcome of a failed attempt).
// level is the session's TLS trust word, for deliveries.
func (f *Follower) record(ctx context.Context, l Line, rt result.Type, verify *Line, level string) {
	if f.priming {
		return
	}
	if l.Kind == KindAttempt {
		rt, _ = Outcome(l, "", verify)
	}
	a := f.answer(ctx, l.Domain)
	if a.Policy.Type == tlsrpt.PolicyTypeTLSA && len(a.Policy.Strings) == 0 {
		f.unjoined.Add(1)
		return
	}
	if a.Policy.Type == "" {
		a.Policy.Type = tlsrpt.PolicyTypeNoPolicyFound
	}
	info := l.Text
	if rt == "" && a.Policy.Type == tlsrpt.PolicyTypeSTS {
		// Delivered under an MTA-STS policy over TLS whose certificate
		// did not verify: only a testing-mode policy lets that happen,
		// and RFC 8460 §4.3 wants it reported. Postfix logs no reason at
		// the levels policyd answers for testing mode.
		switch level {
		case "Untrusted":
			rt, info = result.CertificateNotTrusted, "Postfix: Untrusted TLS connection (delivered under the policy's testing mode)"
		case "Anonymous":
			rt, info = result.ValidationFailure, "Postfix: Anonymous TLS connection, no certificate (delivered under the policy's testing mode)"
		}
	}
	t := l.Time
	if t.IsZero() {
		t = f.now()
	}
	r := outgoing.Result{Time: t, PolicyDomain: l.Domain, Policy: a.Policy, ReportDelivery: f.reportQueue[l.QueueID]}
	if rt != "" {
		fd := outgoing.Failure{ResultType: rt, ReceivingMXHostname: l.Host, ReceivingIP: reportIP(l.IP), AdditionalInfo: info}
		if verify != nil {
			fd.AdditionalInfo = verify.VerifyReason
		}
		r.Failures = []outgoing.Failure{fd}
	}
	if err := f.Recorder.Record(ctx, r); err != nil {
		f.refused.Add(1)
		f.logger().Debug("postfix log: result not recorded", "domain", l.Domain, "err", err)
		return
	}
	f.sessions.Add(1)
	if rt != "" {
		f.failures.Add(1)
	}
}

// reportIP returns ip in the report's form, or "" when it is none.
func reportIP(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return ""
	}
	return a.Unmap().String()
}

func (f *Follower) answer(ctx context.Context, domain string) outgoing.Answer {
	if f.Answers == nil {
		return outgoing.Answer{}
	}
	now := f.now()
	if c, ok := f.answers[domain]; ok && (now.Sub(c.at) < missTTL || c.found && now.Sub(c.at) < answerTTL) {
		return c.a
	}
	a, found, err := f.Answers.AnswerFor(ctx, domain)
	if err != nil {
		f.logger().Warn("postfix log: policy answer lookup failed", "domain", domain, "err", err)
		return outgoing.Answer{}
	}
	if len(f.answers) >= maxAnswers {
		clear(f.answers)
	}
	f.answers[domain] = cachedAnswer{a: a, found: found, at: now}
	return a
}

// Run follows Path until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	poll := f.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	file, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer func() { file.Close() }()
	var off int64
	if !f.FromStart {
		if off, err = file.Seek(0, io.SeekEnd); err != nil {
			return err
		}
	}
	r := bufio.NewReaderSize(file, 64<<10)
	var partial []byte
	// drain reads every complete line there is.
	drain := func() {
		for {
			b, err := r.ReadSlice('\n')
			off += int64(len(b))
			if errors.Is(err, bufio.ErrBufferFull) {
				if len(partial) < MaxLine {
					partial = append(partial, b...)
				}
				continue
			}
			if err != nil {
				if len(partial) < MaxLine {
					partial = append(partial, b...)
				}
				return
			}
			line := b[:len(b)-1]
			if len(partial) > 0 {
				line = append(partial, line...)
				partial = partial[:0]
			}
			if len(line) <= MaxLine {
				f.HandleLine(ctx, string(line))
			}
		}
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		drain()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// Rotation: the path names another file (rename and create), or
		// the file shrank (copytruncate). What the old file got before
		// the switch is read first.
		cur, err1 := file.Stat()
		fi, err2 := os.Stat(f.Path)
		switch {
		case err2 != nil:
			continue // between rename and create
		case err1 == nil && !os.SameFile(cur, fi):
			nf, err := os.Open(f.Path)
			if err != nil {
				continue
			}
			drain()
			file.Close()
			file, off, partial = nf, 0, partial[:0]
			r.Reset(file)
			f.rotations.Add(1)
		case fi.Size() < off:
			if _, err := file.Seek(0, io.SeekStart); err != nil {
				return err
			}
			off, partial = 0, partial[:0]
			r.Reset(file)
			f.rotations.Add(1)
		}
	}
}
