package postfixlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/outgoing"
)

// ErrNoJournalctl means journalctl(1) cannot be found or run.
var ErrNoJournalctl = errors.New("postfixlog: journalctl not found")

// DefaultIdentifiers are the syslog identifiers read from the journal:
// smtp(8)'s delivery lines and cleanup(8)'s Message-IDs (a Postfix
// instance named postfix-out logs as postfix-out/smtp: list those).
var DefaultIdentifiers = []string{"postfix/smtp", "postfix/cleanup"}

// CursorRecorder stores a log source's results together with its
// position, in one transaction (outgoing.Recorder).
type CursorRecorder interface {
	RecordCursor(ctx context.Context, source, cursor string, rs ...outgoing.Result) error
}

// Cursors reads the position stored for a log source (outgoing.Store).
type Cursors interface {
	Cursor(ctx context.Context, source string) (string, bool, error)
}

// JournalStats count what a Journal did beyond its Follower's Stats.
type JournalStats struct {
	Entries  uint64 // journal entries read
	Skipped  uint64 // entries skipped: oversized, malformed or without a cursor
	Restarts uint64 // journalctl runs after the first (it exited or failed)
}

// Journal follows Postfix's log in the systemd journal by running
// `journalctl --follow --output=json`, turns each entry into the line a
// syslog file would hold ("TIME HOST IDENTIFIER[PID]: MESSAGE") and
// hands it to a Follower, so that the results are those of the file.
//
// Nothing is lost or counted twice across restarts: the results of each
// entry go to the Recorder with the entry's cursor, which the store
// writes in the same transaction (Recorder.RecordCursor). At start the
// journal is read from PrimeWindow before the stored cursor up to it
// without recording, so that sessions in progress there are joined as
// they were, then recorded after it. Without a stored cursor it starts at
// Since, or at the end.
type Journal struct {
	// Journalctl is the program; "" means journalctl from PATH.
	Journalctl string
	// Directory, when set, is the journal directory read
	// (journalctl --directory) instead of the system journal.
	Directory string
	// Identifiers are the SYSLOG_IDENTIFIER values read; nil means
	// DefaultIdentifiers.
	Identifiers []string
	// Source names this journal's position in the store (one per host
	// when several share a PostgreSQL store); "" means "postfix-journal".
	Source string
	// Since is where to start without a stored position: "" is the end
	// of the journal, else a journalctl --since value ("today", "-1h").
	Since    string
	Recorder CursorRecorder
	Cursors  Cursors
	// Answers, ReportMessageID, Location: as in Follower.
	Answers         Answers
	ReportMessageID func(id string) bool
	// PrimeWindow is how far before the stored position the journal is
	// re-read without recording at start; 0 means 15 minutes (Postfix's
	// longest smtp(8) timeouts are 10), negative means not at all.
	PrimeWindow time.Duration
	// Backoff is the first wait before journalctl is run again after it
	// exited; doubled up to MaxBackoff. 0 means 1 s and 1 min.
	Backoff, MaxBackoff time.Duration
	// CommitEvery bounds how often the position of entries without
	// results is passed on (with results it always is); 0 means 1 s.
	CommitEvery time.Duration
	Logger      *slog.Logger
	// Now is the clock (how often positions are passed on, when the
	// first run from the end started); nil is time.Now.
	Now func() time.Time

	f                          Follower
	got                        []outgoing.Result
	entries, skipped, restarts atomic.Uint64
}

// MaxEntry is the longest journal entry (one line of JSON) read; longer
// ones are skipped. A MESSAGE of MaxLine bytes sent as a JSON byte array
// takes up to four times its size.
const MaxEntry = 64 << 10

// position is what is stored as a cursor: the journal cursor of the last
// entry whose results are stored, its time, and the cursor to re-read
// from at start (PrimeWindow earlier).
type position struct {
	Cursor   string `json:"cursor"`
	Realtime int64  `json:"realtime_usec"`
	Prime    string `json:"prime,omitempty"`
}

// Stats returns the Follower's counters.
func (j *Journal) Stats() Stats { return j.f.Stats() }

// JournalStats returns the journal's own counters.
func (j *Journal) JournalStats() JournalStats {
	return JournalStats{Entries: j.entries.Load(), Skipped: j.skipped.Load(), Restarts: j.restarts.Load()}
}

func (j *Journal) logger() *slog.Logger {
	if j.Logger != nil {
		return j.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (j *Journal) source() string {
	if j.Source != "" {
		return j.Source
	}
	return "postfix-journal"
}

// Check finds journalctl and returns its path, or an error wrapping
// ErrNoJournalctl.
func (j *Journal) Check() (string, error) {
	name := j.Journalctl
	if name == "" {
		name = "journalctl"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %v (install systemd's journalctl, or follow a log file instead)", ErrNoJournalctl, err)
	}
	for _, id := range j.identifiers() {
		if id == "" || strings.ContainsAny(id, "= \t\n") {
			return "", fmt.Errorf("postfixlog: bad syslog identifier %q", id)
		}
	}
	return p, nil
}

func (j *Journal) identifiers() []string {
	if j.Identifiers != nil {
		return j.Identifiers
	}
	return DefaultIdentifiers
}

// args are journalctl's arguments: follow from after (a cursor), else
// from since, else the end.
func (j *Journal) args(after, since string) []string {
	a := []string{"--follow", "--output=json", "--all", "--no-pager",
		"--output-fields=MESSAGE,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_HOSTNAME"}
	if j.Directory != "" {
		a = append(a, "--directory="+j.Directory)
	}
	switch {
	case after != "":
		a = append(a, "--no-tail", "--after-cursor="+after)
	case since != "":
		a = append(a, "--no-tail", "--since="+since)
	default:
		a = append(a, "--lines=0")
	}
	for _, id := range j.identifiers() {
		a = append(a, "SYSLOG_IDENTIFIER="+id)
	}
	return a
}

// journalState is Run's progress.
type journalState struct {
	last     string // cursor of the last entry handled
	lastRT   int64
	pending  bool // last's position not passed on yet
	passedAt time.Time
	// priming until the entry with cursor target (or one after its
	// time) is handled: entries then rebuild sessions without recording.
	priming  bool
	target   string
	targetRT int64
	// prime is the cursor to re-read from after a restart; samples are
	// recent (time, cursor) pairs to move it forward.
	prime   string
	samples []sample
	// read: an entry was read in this process; failed counts journalctl
	// runs in a row that read nothing and failed.
	read   bool
	failed int
}

// maxCursorFailures is how many failed journalctl runs from a stored
// cursor that read nothing make Run seek by the cursor's time instead
// (a cursor journalctl refuses, of another journal).
const maxCursorFailures = 3

type sample struct {
	rt     int64
	cursor string
}

// Run follows the journal until ctx ends (once per Journal: it keeps the
// sessions in progress). It returns an error only when
// journalctl cannot be found; when journalctl exits or fails it is run
// again after a back-off, from the entry after the last one read.
func (j *Journal) Run(ctx context.Context) error {
	path, err := j.Check()
	if err != nil {
		return err
	}
	j.f.Answers, j.f.ReportMessageID, j.f.Logger = j.Answers, j.ReportMessageID, j.Logger
	j.f.Recorder = recorderFunc(func(_ context.Context, r outgoing.Result) error {
		j.got = append(j.got, r)
		return nil
	})
	backoff := j.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	maxBackoff := j.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = time.Minute
	}
	var st journalState
	loaded := false
	var startedAt time.Time // the first run from the journal's end
	wait := backoff
	for run := 0; ; run++ {
		if run > 0 {
			j.restarts.Add(1)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			wait = min(2*wait, maxBackoff)
		}
		if !loaded {
			if err := j.load(ctx, &st); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				j.logger().Warn("postfix journal: stored position not read; retrying", "err", err)
				continue
			}
			loaded = true
		}
		after, since := st.last, ""
		switch {
		case after != "":
		case j.Since != "":
			since = j.Since
		case !startedAt.IsZero():
			// journalctl stopped before it printed an entry: what was
			// logged since the first run started is not to be missed.
			since = "@" + strconv.FormatInt(startedAt.Unix(), 10)
		default:
			startedAt = j.now()
		}
		if !st.read && st.failed >= maxCursorFailures && st.lastRT > 0 {
			// journalctl keeps refusing the stored cursor: seek by its
			// time, re-reading (without recording) up to it.
			from := st.lastRT - j.primeWindow().Microseconds()
			after, since = "", "@"+strconv.FormatInt(max(from, 0)/1e6, 10)
			if !st.priming {
				st.priming, st.target, st.targetRT = true, st.last, st.lastRT
			}
			j.logger().Error("postfix journal: journalctl refuses the stored cursor; reading from its time", "cursor", st.last, "since", since)
		}
		read, err := j.runOnce(ctx, path, j.args(after, since), &st)
		if ctx.Err() != nil {
			return nil
		}
		if read > 0 {
			wait = backoff // it worked for a while: restart soon
			st.read, st.failed = true, 0
		} else if err != nil {
			st.failed++
		}
		j.logger().Warn("postfix journal: journalctl stopped; restarting", "entries", read, "err", err, "in", wait)
	}
}

type recorderFunc func(ctx context.Context, r outgoing.Result) error

func (f recorderFunc) Record(ctx context.Context, r outgoing.Result) error { return f(ctx, r) }

// load reads the stored position: the journal is re-read from its prime
// cursor (or just after its cursor) and recorded after its cursor.
func (j *Journal) load(ctx context.Context, st *journalState) error {
	if j.Cursors == nil {
		return nil
	}
	s, ok, err := j.Cursors.Cursor(ctx, j.source())
	if err != nil || !ok {
		return err
	}
	var p position
	if err := json.Unmarshal([]byte(s), &p); err != nil || p.Cursor == "" {
		j.logger().Warn("postfix journal: stored position unreadable; starting afresh", "position", s)
		return nil
	}
	st.last, st.lastRT, st.prime = p.Cursor, p.Realtime, p.Prime
	if p.Prime != "" && j.PrimeWindow >= 0 {
		st.last, st.priming, st.target, st.targetRT = p.Prime, true, p.Cursor, p.Realtime
	}
	return nil
}

// runOnce runs journalctl once and handles its entries until it exits or
// ctx ends; it returns how many entries it read.
func (j *Journal) runOnce(ctx context.Context, path string, args []string, st *journalState) (int, error) {
	// stop ends journalctl when reading ends first (ctx still running).
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(cctx, path, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	stderr := &tailWriter{max: 4096}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoJournalctl, err)
	}
	j.logger().Debug("postfix journal: journalctl started", "args", strings.Join(args, " "))
	r := bufio.NewReaderSize(out, 64<<10)
	n := 0
	var rerr error
	for {
		line, err := readEntry(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				rerr = err
			}
			break
		}
		if line == nil {
			j.skipped.Add(1) // longer than MaxEntry
			continue
		}
		n++
		if err := j.handle(ctx, line, st, r.Buffered() == 0); err != nil {
			rerr = err // ctx ended while recording
			break
		}
	}
	if ctx.Err() == nil && st.pending && rerr == nil {
		j.pass(ctx, st)
	}
	if rerr != nil {
		stop()
	}
	werr := cmd.Wait()
	if rerr == nil {
		rerr = werr
	}
	if s := stderr.String(); s != "" && ctx.Err() == nil {
		j.logger().Warn("postfix journal: journalctl said", "stderr", s)
	}
	return n, rerr
}

// readEntry returns the next line without its newline, nil for a line
// longer than MaxEntry (read to its end and dropped).
func readEntry(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		b, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(b) > MaxEntry+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, b...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return nil, err // a partial last line is journalctl dying mid-write
		}
		if tooLong {
			return nil, nil
		}
		return buf[:len(buf)-1], nil
	}
}

// entry is one decoded journal entry.
type entry struct {
	cursor   string
	realtime int64
	line     string
}

// handle turns one JSON entry into a line for the Follower and passes its
// results on with its position; idle says no further entry is buffered.
func (j *Journal) handle(ctx context.Context, raw []byte, st *journalState, idle bool) error {
	j.entries.Add(1)
	e, ok := decodeEntry(raw)
	if !ok {
		j.skipped.Add(1)
		return nil
	}
	if st.priming && st.targetRT > 0 && e.realtime > st.targetRT {
		// The stored cursor's entry is gone (vacuumed): record from the
		// first entry after its time.
		st.priming = false
		j.logger().Warn("postfix journal: stored cursor not found while re-reading; recording from the next entry", "cursor", st.target)
	}
	j.got = j.got[:0]
	j.f.priming = st.priming
	if e.line != "" {
		j.f.HandleLine(ctx, e.line)
	}
	j.f.priming = false
	st.last, st.lastRT = e.cursor, e.realtime
	j.sample(st, e)
	if st.priming {
		if e.cursor == st.target {
			st.priming = false
		}
		return nil
	}
	st.pending = true
	if len(j.got) > 0 || idle || j.now().Sub(st.passedAt) >= j.commitEvery() {
		return j.pass(ctx, st)
	}
	return nil
}

// pass hands the results of the current entry (if any) and the position
// after it to the Recorder.
func (j *Journal) pass(ctx context.Context, st *journalState) error {
	p, _ := json.Marshal(position{Cursor: st.last, Realtime: st.lastRT, Prime: st.prime})
	if err := j.Recorder.RecordCursor(ctx, j.source(), string(p), j.got...); err != nil {
		return err
	}
	j.got = j.got[:0]
	st.pending, st.passedAt = false, j.now()
	return nil
}

// sample keeps the cursor PrimeWindow before the newest entry in
// st.prime, from samples taken every eighth of the window.
func (j *Journal) sample(st *journalState, e entry) {
	w := j.primeWindow()
	if w <= 0 {
		return
	}
	win := w.Microseconds()
	if n := len(st.samples); n == 0 || e.realtime-st.samples[n-1].rt >= win/8 || e.realtime < st.samples[n-1].rt {
		st.samples = append(st.samples, sample{e.realtime, e.cursor})
	}
	i := 0
	for i < len(st.samples) && st.samples[i].rt <= e.realtime-win {
		i++
	}
	if i > 0 {
		st.prime = st.samples[i-1].cursor
		st.samples = st.samples[i-1:]
	}
	if len(st.samples) > 64 { // clocks that jump back: stay bounded
		st.samples = st.samples[len(st.samples)-64:]
	}
}

func (j *Journal) primeWindow() time.Duration {
	switch {
	case j.PrimeWindow == 0:
		return 15 * time.Minute
	case j.PrimeWindow < 0:
		return 0
	}
	return j.PrimeWindow
}

func (j *Journal) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

func (j *Journal) commitEvery() time.Duration {
	if j.CommitEvery > 0 {
		return j.CommitEvery
	}
	return time.Second
}

// decodeEntry reads journalctl's JSON form of an entry: field values are
// strings, arrays of byte values (not UTF-8 or not printable), null (too
// large without --all) or arrays of those (a field given several times,
// refused here). It returns the syslog line, "" when the entry is not
// one (no message or identifier); ok is false without a cursor.
func decodeEntry(raw []byte) (entry, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return entry{}, false
	}
	cursor, ok := field(m["__CURSOR"])
	if !ok || len(cursor) == 0 || len(cursor) > 1024 {
		return entry{}, false
	}
	e := entry{cursor: string(cursor)}
	if rt, ok := field(m["__REALTIME_TIMESTAMP"]); ok {
		e.realtime, _ = strconv.ParseInt(string(rt), 10, 64)
	}
	msg, ok1 := field(m["MESSAGE"])
	ident, ok2 := field(m["SYSLOG_IDENTIFIER"])
	if !ok1 || !ok2 || len(msg) > MaxLine || e.realtime <= 0 || !token(ident) {
		return e, true
	}
	pid, ok := field(m["SYSLOG_PID"])
	if !ok {
		pid, ok = field(m["_PID"])
	}
	if !ok || !digits(pid) {
		return e, true
	}
	host, _ := field(m["_HOSTNAME"])
	if !token(host) {
		host = []byte("-")
	}
	t := time.UnixMicro(e.realtime).UTC().Format(time.RFC3339Nano)
	e.line = t + " " + string(host) + " " + string(ident) + "[" + string(pid) + "]: " + string(msg)
	return e, true
}

// field returns a field's one value.
func field(v json.RawMessage) ([]byte, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil, false
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, false
		}
		return []byte(s), true
	case '[':
		var bs []int
		if json.Unmarshal(v, &bs) != nil { // several values, or not bytes
			return nil, false
		}
		b := make([]byte, len(bs))
		for i, c := range bs {
			if c < 0 || c > 255 {
				return nil, false
			}
			b[i] = byte(c)
		}
		return b, true
	}
	return nil, false // null, numbers, objects
}

// token: printable ASCII without spaces, brackets or colons, as a host
// name or syslog identifier in a log line.
func token(b []byte) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' || c == '[' || c == ']' || c == ':' {
			return false
		}
	}
	return true
}

func digits(b []byte) bool {
	if len(b) == 0 || len(b) > 10 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// tailWriter keeps the last max bytes written (journalctl's stderr).
type tailWriter struct {
	max int
	b   []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append(w.b[:0], w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return strings.TrimSpace(string(w.b)) }
