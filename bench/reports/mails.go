package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/mailsts/mailsts/tlsrpt"
)

// Mail mode (-mails): whole report mails parsed by mailsts's
// tlsrpt.ParseMessage and, side by side, by mox's (moxparse/, a module
// of its own that bench/reports builds and runs on the same files).

// Sums are computed by each parser from the reports it parsed: the
// count of policies, the sum of total-successful-session-count and
// total-failure-session-count over every policy of every report, and
// the sum of failed-session-count over every failure detail. Both
// parsers must arrive at the same figures from the same mails.
type Sums struct {
	Policies int   `json:"policies"`
	Sessions int64 `json:"sessions"`
	Details  int64 `json:"detail_sessions"`
}

func (s *Sums) add(r *tlsrpt.Report) {
	for _, p := range r.Policies {
		s.Policies++
		s.Sessions += p.Summary.TotalSuccessfulSessionCount + p.Summary.TotalFailureSessionCount
		for _, d := range p.FailureDetails {
			s.Details += d.FailedSessionCount
		}
	}
}

func (s Sums) String() string {
	return fmt.Sprintf("policies=%d sessions=%d detail_sessions=%d", s.Policies, s.Sessions, s.Details)
}

// Pass is one timed pass of one parser over every mail, as the peer
// prints it (one JSON line) and as parseMails returns it.
type Pass struct {
	Mails    int   `json:"mails"`
	Failures int   `json:"failures"`
	Elapsed  int64 `json:"elapsed_ns"`
	// CPU is the process's user + system time over the pass (every
	// goroutine: the garbage collector's too).
	CPU int64 `json:"cpu_ns"`
	Sums
	// FirstError is the error of the first mail that failed.
	FirstError string `json:"first_error,omitempty"`
}

// PerSec is the pass's mails per second.
func (p Pass) PerSec() float64 { return float64(p.Mails) / time.Duration(p.Elapsed).Seconds() }

// CPUPerMail is the pass's CPU time per mail.
func (p Pass) CPUPerMail() time.Duration { return time.Duration(p.CPU / int64(max(p.Mails, 1))) }

// MailRound is one round of the mail mode: mailsts's pass, then each
// peer's, in the order of MailConfig.Peers.
type MailRound struct {
	Mailsts Pass
	Peers   []Pass
}

// mailDate is the Date of a report's mail: an hour after its day.
func mailDate(r *tlsrpt.Report) time.Time { return r.DateRange.End.Add(time.Hour) }

// writeMails writes n report mails, the synthetic reports Synth(0..n-1)
// composed as senders mail them (multipart/report, the gzipped report
// base64-encoded, tlsrpt.ComposeMessage), one file each into dir, and
// returns the sums of the reports themselves and the bytes written.
func writeMails(dir string, n int) (Sums, int64, error) {
	var want Sums
	var size int64
	for i := range n {
		r := Synth(i)
		want.add(r)
		_, submitter, _ := strings.Cut(r.ContactInfo, "@")
		m, err := tlsrpt.ComposeMessage(r, tlsrpt.MailOptions{
			To:        []string{"tlsrpt@" + r.Policies[0].Policy.Domain},
			Date:      mailDate(r),
			MessageID: fmt.Sprintf("bench.%d@%s", i, submitter),
		})
		if err != nil {
			return want, size, fmt.Errorf("mail %d: %w", i, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%07d.eml", i)), m, 0o644); err != nil {
			return want, size, err
		}
		size += int64(len(m))
	}
	return want, size, nil
}

// readMails reads every regular file of dir, in name order.
func readMails(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var mails [][]byte
	for _, e := range ents { // ReadDir sorts by name
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		mails = append(mails, b)
	}
	return mails, nil
}

// parseMails times mailsts's parse of every mail in this goroutine:
// tlsrpt.ParseMessage (MIME, transfer decoding, gunzip) and the parse
// of each report attachment's JSON, the work mox's ParseMessage does in
// one call. The reports are kept, as the peer keeps its, and summed
// after the clock stops.
func parseMails(mails [][]byte) Pass {
	parsed := make([][]*tlsrpt.Report, len(mails))
	errs := make([]error, len(mails))
	runtime.GC() // the previous round's garbage is not this pass's
	start, cpu := time.Now(), cpuTime()
	for i, m := range mails {
		msg, err := tlsrpt.ParseMessage(bytes.NewReader(m), tlsrpt.Limits{})
		if err != nil {
			errs[i] = err
			continue
		}
		for _, a := range msg.Attachments {
			r, _, err := a.Parse()
			if err != nil {
				errs[i] = err
				break
			}
			parsed[i] = append(parsed[i], r)
		}
	}
	p := Pass{Mails: len(mails), Elapsed: int64(time.Since(start)), CPU: int64(cpuTime() - cpu)}
	for i, rs := range parsed {
		if errs[i] == nil && len(rs) != 1 {
			errs[i] = fmt.Errorf("%d reports, want 1", len(rs))
		}
		if errs[i] != nil {
			if p.Failures == 0 {
				p.FirstError = fmt.Sprintf("mail %d: %v", i, errs[i])
			}
			p.Failures++
			continue
		}
		p.Sums.add(rs[0])
	}
	return p
}

// moxSource is the directory of the peer's module: moxparse/ next to
// this file, else (a binary built with -trimpath) under the current
// directory as `go run ./bench/reports` runs from the repository root.
func moxSource() string {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "moxparse")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	return filepath.Join("bench", "reports", "moxparse")
}

// BuildMox builds the peer (module moxparse, requiring mox v0.0.15 with
// its go.sum committed) into dir and returns the binary's path. env is
// added to the go command's environment (the test sets GOPROXY=off, so
// that only the module cache is used).
func BuildMox(ctx context.Context, dir string, env ...string) (string, error) {
	bin := filepath.Join(dir, "moxparse")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = moxSource()
	cmd.Env = append(append(os.Environ(), "GOWORK=off"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the mox peer in %s: %w: %s", cmd.Dir, err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// MailPeer is a parser run side by side with mailsts's: a command that
// takes -dir DIR and prints one JSON line of a Pass (moxparse/,
// parsedmarcparse.py).
type MailPeer struct {
	Name string
	Cmd  []string // the program and its first arguments; -dir DIR follows
	Env  []string // added to the environment
}

// run runs the peer on dir and decodes its line.
func (p MailPeer) run(ctx context.Context, dir string) (Pass, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, p.Cmd[0], append(p.Cmd[1:len(p.Cmd):len(p.Cmd)], "-dir", dir)...)
	if p.Env != nil {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Pass{}, fmt.Errorf("%s: %w: %s", p.Name, err, clipOut(string(bytes.TrimSpace(stderr.Bytes()))))
	}
	var pass Pass
	if err := json.Unmarshal(stdout.Bytes(), &pass); err != nil {
		return pass, fmt.Errorf("%s: output %q: %w", p.Name, clipOut(stdout.String()), err)
	}
	return pass, nil
}

// MoxPeer is the mox peer built by BuildMox.
func MoxPeer(bin string) MailPeer { return MailPeer{Name: "mox", Cmd: []string{bin}} }

// parsedmarcSource is the path of the parsedmarc driver, found as
// moxSource finds moxparse/.
func parsedmarcSource() string {
	if _, file, _, ok := runtime.Caller(0); ok {
		p := filepath.Join(filepath.Dir(file), "parsedmarcparse.py")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join("bench", "reports", "parsedmarcparse.py")
}

// ParsedmarcPeer runs parsedmarc through parsedmarcparse.py with python;
// pythonPath, when set, is the PYTHONPATH of a parsedmarc run from
// source (bench/reports/README.md).
func ParsedmarcPeer(python, pythonPath string) MailPeer {
	p := MailPeer{Name: "parsedmarc", Cmd: []string{python, parsedmarcSource()}}
	if pythonPath != "" {
		p.Env = []string{"PYTHONPATH=" + pythonPath}
	}
	return p
}

func clipOut(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// errDisagree is returned when the parsers' sums differ, or differ from
// the reports': one of them misread the mails.
var errDisagree = errors.New("sums disagree")

// MailConfig is a run of the mail mode.
type MailConfig struct {
	N, Rounds int
	// Peers are run after mailsts in every round; none: mailsts alone.
	Peers []MailPeer

	// profile, when set, receives a CPU profile of mailsts's first pass.
	profile io.Writer
}

// CompareMails builds c.N report mails (before any clock starts), writes
// them into a temporary directory (removed after) and runs c.Rounds
// rounds of mailsts's parse over them, each followed by each peer's
// parse of the same files, alternating so that all see the same machine
// load. Every mail must parse on both sides and
// every sum agree with the reports', else it returns an error
// (errDisagree for the sums) with the rounds so far.
func CompareMails(ctx context.Context, c MailConfig, out io.Writer) ([]MailRound, error) {
	n := c.N
	dir, err := os.MkdirTemp("", "mailsts-bench-mails-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	want, size, err := writeMails(dir, n)
	if err != nil {
		return nil, err
	}
	// mailsts reads the files as the peer does: the very same bytes.
	mails, err := readMails(dir)
	if err != nil {
		return nil, err
	}
	if len(mails) != n {
		return nil, fmt.Errorf("%s: %d mails read, %d written", dir, len(mails), n)
	}
	fmt.Fprintf(out, "%d mails, %.0f bytes each on average; reports: %v\n", n, float64(size)/float64(max(n, 1)), want)
	// One untimed pass first, as the peer makes one before its timed
	// pass: both parsers are timed with their heap grown and code warm.
	parseMails(mails)
	var res []MailRound
	for round := range max(c.Rounds, 1) {
		var rd MailRound
		if round == 0 && c.profile != nil {
			if err := pprof.StartCPUProfile(c.profile); err != nil {
				return nil, err
			}
		}
		rd.Mailsts = parseMails(mails)
		if round == 0 && c.profile != nil {
			pprof.StopCPUProfile()
		}
		if err := checkPass("mailsts", rd.Mailsts, n, want); err != nil {
			return res, fmt.Errorf("round %d: %w", round+1, err)
		}
		line := fmt.Sprintf("round %d: mailsts %.0f mails/s (CPU %v/mail)", round+1, rd.Mailsts.PerSec(), rd.Mailsts.CPUPerMail().Round(100*time.Nanosecond))
		for _, peer := range c.Peers {
			p, err := peer.run(ctx, dir)
			if err != nil {
				return res, fmt.Errorf("round %d: %w", round+1, err)
			}
			if err := checkPass(peer.Name, p, n, want); err != nil {
				return res, fmt.Errorf("round %d: %w", round+1, err)
			}
			line += fmt.Sprintf(", %s %.0f mails/s (CPU %v/mail), mailsts/%s %.2f", peer.Name, p.PerSec(),
				p.CPUPerMail().Round(100*time.Nanosecond), peer.Name, rd.Mailsts.PerSec()/p.PerSec())
			rd.Peers = append(rd.Peers, p)
		}
		fmt.Fprintln(out, line)
		res = append(res, rd)
	}
	return res, nil
}

// checkPass: every mail parsed, and the sums are the reports'.
func checkPass(name string, p Pass, n int, want Sums) error {
	if p.Mails != n || p.Failures > 0 {
		return fmt.Errorf("%s: %d of %d mails failed to parse (%d read); first: %s", name, p.Failures, n, p.Mails, p.FirstError)
	}
	if p.Sums != want {
		return fmt.Errorf("%s: %w: parsed %v, the reports have %v", name, errDisagree, p.Sums, want)
	}
	return nil
}

// printMails prints the table of the rounds: each parser's mails/s and
// CPU per mail (median; min-max), and mailsts against each peer.
func printMails(w io.Writer, rs []MailRound, peers []MailPeer) {
	if len(rs) == 0 {
		return
	}
	col := func(f func(MailRound) float64) string {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		med := v[len(v)/2]
		if len(v)%2 == 0 {
			med = (v[len(v)/2-1] + med) / 2
		}
		prec := 2 // the ratios
		if med >= 100 {
			prec = 0
		} else if med >= 10 {
			prec = 1
		}
		return fmt.Sprintf("%.*f (%.*f-%.*f)", prec, med, prec, v[0], prec, v[len(v)-1])
	}
	us := func(p Pass) float64 { return float64(p.CPU) / 1e3 / float64(max(p.Mails, 1)) }
	fmt.Fprintf(w, "%d rounds, median (min-max):\n", len(rs))
	fmt.Fprintf(w, "%-18s %-24s %s\n", "", "mails/s", "CPU µs/mail")
	fmt.Fprintf(w, "%-18s %-24s %s\n", "mailsts", col(func(r MailRound) float64 { return r.Mailsts.PerSec() }),
		col(func(r MailRound) float64 { return us(r.Mailsts) }))
	for i, peer := range peers {
		if len(rs[0].Peers) <= i {
			return
		}
		fmt.Fprintf(w, "%-18s %-24s %s\n", peer.Name, col(func(r MailRound) float64 { return r.Peers[i].PerSec() }),
			col(func(r MailRound) float64 { return us(r.Peers[i]) }))
		fmt.Fprintf(w, "%-18s %-24s %s\n", "mailsts/"+peer.Name, col(func(r MailRound) float64 { return r.Mailsts.PerSec() / r.Peers[i].PerSec() }),
			col(func(r MailRound) float64 { return float64(r.Mailsts.CPU) / float64(r.Peers[i].CPU) }))
	}
	if len(peers) > 0 {
		fmt.Fprintf(w, "(mailsts/PEER: above 1 mailsts parses more mails/s; below 1 it uses less CPU per mail)\n")
		fmt.Fprintf(w, "sums agree in every round: %v\n", rs[0].Mailsts.Sums)
	}
}
