package checker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsts/mailsts/dnsresolve"
)

// DefaultConcurrency is how many domains Bulk checks at once.
const DefaultConcurrency = 64

// maxInputLine caps one line of a bulk input file.
const maxInputLine = 64 << 10

// ErrInput is wrapped by errors reading a bulk input file: fix the file or
// the --column flag.
var ErrInput = errors.New("checker: bad bulk input")

// DomainReader streams domain names from a list: one per line (blank lines
// and lines starting with '#' are skipped), or one column of a CSV file.
// It holds one line at a time, whatever the file size.
type DomainReader struct {
	lines  *bufio.Scanner
	csv    *csv.Reader
	column string
	index  int // 0-based CSV column, -1 until known
	line   int
}

// NewDomainReader reads domains from r. column "" means one domain per
// line; otherwise r is CSV and column is a 1-based column number or the
// name of a column in the header row.
func NewDomainReader(r io.Reader, column string) *DomainReader {
	dr := &DomainReader{column: column, index: -1}
	if column == "" {
		dr.lines = bufio.NewScanner(r)
		dr.lines.Buffer(make([]byte, 0, 4096), maxInputLine)
		return dr
	}
	dr.csv = csv.NewReader(r)
	dr.csv.FieldsPerRecord = -1
	dr.csv.ReuseRecord = true
	dr.csv.Comment = '#'
	if n, err := strconv.Atoi(column); err == nil && n > 0 {
		dr.index = n - 1
	}
	return dr
}

// Next returns the next domain name as written (trimmed), or io.EOF at the
// end. Errors wrap ErrInput.
func (dr *DomainReader) Next() (string, error) {
	if dr.lines != nil {
		for dr.lines.Scan() {
			dr.line++
			s := strings.TrimSpace(dr.lines.Text())
			if s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			return s, nil
		}
		if err := dr.lines.Err(); err != nil {
			return "", fmt.Errorf("%w: line %d: %w", ErrInput, dr.line+1, err)
		}
		return "", io.EOF
	}
	for {
		rec, err := dr.csv.Read()
		if err == io.EOF {
			return "", io.EOF
		}
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInput, err)
		}
		dr.line++
		if dr.index < 0 {
			// The header row names the column.
			for i, h := range rec {
				if strings.EqualFold(strings.TrimSpace(h), dr.column) {
					dr.index = i
				}
			}
			if dr.index < 0 {
				return "", fmt.Errorf("%w: no column %q in the header row %q", ErrInput, dr.column, strings.Join(rec, ","))
			}
			continue
		}
		if dr.index >= len(rec) {
			continue
		}
		if s := strings.TrimSpace(rec[dr.index]); s != "" {
			return s, nil
		}
	}
}

// DoneSet remembers which domains an earlier run already checked, as a
// sorted array of 64-bit FNV-1a hashes of the normalized names: 8 bytes per
// done domain (a million take 8 MB), looked up by binary search. A hash
// collision would skip one unchecked domain, with probability about
// n²/2⁶⁵ for n names. The zero value is an empty set.
type DoneSet struct {
	h []uint64 // sorted, no duplicates once sealed
	// earlier counts the results read, so that a resumed run's Summary
	// covers the whole output file, not only what it checked itself.
	earlier  int
	verdicts map[string]int
	findings map[string]int
}

// maxEarlierFindings bounds the distinct finding ids counted from an
// earlier run's file (the file is input: ids are not trusted to be few).
const maxEarlierFindings = 1024

// domainHash is the 64-bit FNV-1a hash of a domain's normalized name
// (the name as given when it does not normalize): what DoneSet and the
// bulk run's duplicate check keep of a domain.
func domainHash(domain string) uint64 {
	if n, err := dnsresolve.Normalize(domain); err == nil {
		domain = n
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(domain))
	return h.Sum64()
}

// Has reports whether domain (any form) was done.
func (d *DoneSet) Has(domain string) bool {
	if d == nil || len(d.h) == 0 {
		return false
	}
	_, ok := slices.BinarySearch(d.h, domainHash(domain))
	return ok
}

// Len returns how many distinct domains are in the set.
func (d *DoneSet) Len() int {
	if d == nil {
		return 0
	}
	return len(d.h)
}

// add appends domain; seal must run before Has.
func (d *DoneSet) add(domain string) {
	d.h = append(d.h, domainHash(domain))
}

// count records one earlier result: its verdict and its warn and fail
// finding ids (each counted once per result, as Summary does).
func (d *DoneSet) count(verdict string, ids iter.Seq[string]) {
	if d.verdicts == nil {
		d.verdicts, d.findings = map[string]int{}, map[string]int{}
	}
	switch verdict {
	case VerdictPass, VerdictWarn, VerdictFail, VerdictError:
	default:
		verdict = VerdictError // not one of ours: the line is not a usable result
	}
	d.earlier++
	d.verdicts[verdict]++
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] || len(id) > 64 || d.findings[id] == 0 && len(d.findings) >= maxEarlierFindings {
			continue
		}
		seen[id] = true
		d.findings[id]++
	}
}

// seal sorts the hashes, drops duplicates and returns spare capacity.
func (d *DoneSet) seal() {
	slices.Sort(d.h)
	d.h = slices.Clip(slices.Compact(d.h))
}

// ReadDone reads the JSON Lines of an earlier run and returns the domains
// it holds. Lines that are not a report (a line cut off when the run was
// interrupted) are ignored, so that their domains are checked again.
func ReadDone(r io.Reader) (*DoneSet, error) {
	d := &DoneSet{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var rec struct {
			Schema   int    `json:"schema"`
			Domain   string `json:"domain"`
			Input    string `json:"input"`
			Verdict  string `json:"verdict"`
			Findings []struct {
				ID       string `json:"id"`
				Severity string `json:"severity"`
			} `json:"findings"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Schema == 0 || rec.Verdict == "" {
			continue
		}
		d.add(rec.Domain)
		if rec.Input != "" {
			d.add(rec.Input)
		}
		d.count(rec.Verdict, func(yield func(string) bool) {
			for _, f := range rec.Findings {
				if (f.Severity == SeverityWarn.String() || f.Severity == SeverityFail.String()) && !yield(f.ID) {
					return
				}
			}
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading earlier results: %w", err)
	}
	d.seal()
	return d, nil
}

// OpenResume opens the JSON Lines file at path for appending and returns
// the domains it already holds. A last line cut off by an interrupted run
// is removed first, so that appended lines stay well-formed. The file is
// created when missing.
func OpenResume(path string) (*os.File, *DoneSet, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	done, err := ReadDone(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := trimPartialLine(f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, done, nil
}

// trimPartialLine truncates f after its last newline and seeks to the end.
func trimPartialLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	buf := make([]byte, 4096)
	end := size
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end != size {
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	_, err = f.Seek(end, io.SeekStart)
	return err
}

// Bulk checks many domains with bounded concurrency and streams one JSON
// line per report to Out as results arrive. Memory grows with the number
// of domains only by the set that finds duplicate lines (24–38 bytes
// a distinct domain): input is read as workers free up, and reports are
// written and dropped at once (only the Summary's counters remain). A
// domain named on several lines (in any case, with or without the final
// dot) is checked once.
type Bulk struct {
	// Checker checks each domain; its Timeout bounds each one.
	Checker *Checker
	// Concurrency is how many checks run at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Out receives one JSON object per line (the Report schema).
	Out io.Writer
	// Done lists domains to skip (from an earlier run); nil skips none.
	Done *DoneSet
	// OnReport, when set, is called after each report is written, from a
	// single goroutine (for progress bars).
	OnReport func(*Report)
}

// Summary counts the outcome of a bulk run.
type Summary struct {
	// Checked counts the domains this run checked; Skipped the input
	// domains found in Done; Duplicates the input lines naming a domain
	// an earlier line of this run named (checked once).
	Checked    int
	Skipped    int
	Duplicates int
	// Earlier counts the results an earlier run left in the output file
	// (Bulk.Done). Verdicts and Findings include them, so that a resumed
	// run reports and exits on the whole file.
	Earlier int
	// ResolverDown counts the domains of this run not judged because the
	// resolver did not answer (ErrResolver): when it equals Checked, the
	// run could not run at all.
	ResolverDown int
	Verdicts     map[string]int
	// Findings counts domains per warn or fail finding ID.
	Findings map[string]int
	Elapsed  time.Duration
	// Slowest is the longest single check and its domain.
	Slowest       time.Duration
	SlowestDomain string
}

// Run reads every domain from src and checks it. It returns when the input
// is exhausted and every check is written, or when ctx ends (the error is
// then ctx's, and every report written so far is complete). A failing
// input or output stops the run with an error.
func (b *Bulk) Run(ctx context.Context, src *DomainReader) (*Summary, error) {
	start := time.Now()
	sum := &Summary{Verdicts: map[string]int{}, Findings: map[string]int{}}
	if b.Done != nil {
		sum.Earlier = b.Done.earlier
		maps.Copy(sum.Verdicts, b.Done.verdicts)
		maps.Copy(sum.Findings, b.Done.findings)
	}
	conc := b.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(chan string, conc)
	results := make(chan *Report, conc)
	var inputErr error
	go func() {
		defer close(jobs)
		// The domains of this run, as DoneSet keeps them (domainHash): a
		// duplicate line is checked once. 24–38 bytes a
		// distinct domain (2.4 MB at 100,000, 38 MB at 1,000,000).
		seen := map[uint64]struct{}{}
		for {
			d, err := src.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				inputErr = err
				cancel()
				return
			}
			if b.Done.Has(d) {
				sum.Skipped++ // only this goroutine writes Skipped until jobs closes
				continue
			}
			key := domainHash(d)
			if _, dup := seen[key]; dup {
				sum.Duplicates++ // as Skipped
				continue
			}
			seen[key] = struct{}{}
			select {
			case jobs <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for d := range jobs {
				if ctx.Err() != nil {
					continue // drain: checks after cancellation would be cut short
				}
				results <- b.Checker.Check(ctx, d)
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	w := bufio.NewWriterSize(b.Out, 64<<10)
	enc := json.NewEncoder(w)
	var outErr error
	for r := range results {
		if outErr != nil {
			continue
		}
		if ctx.Err() != nil {
			// The check may have been cut short by the cancellation:
			// do not record it, so a resumed run checks the domain again.
			continue
		}
		if err := enc.Encode(r); err != nil {
			outErr = err
			cancel()
			continue
		}
		// Flush per line: results reach the file as they arrive, and an
		// interrupted run leaves at most one partial line.
		if err := w.Flush(); err != nil {
			outErr = err
			cancel()
			continue
		}
		sum.add(r)
		if b.OnReport != nil {
			b.OnReport(r)
		}
	}
	sum.Elapsed = time.Since(start)
	switch {
	case outErr != nil:
		return sum, fmt.Errorf("writing results: %w", outErr)
	case inputErr != nil:
		return sum, inputErr
	}
	return sum, context.Cause(ctx)
}

func (s *Summary) add(r *Report) {
	s.Checked++
	if r.Error == ErrResolver.Error() {
		s.ResolverDown++
	}
	s.Verdicts[r.Verdict]++
	seen := map[string]bool{}
	for _, f := range r.Findings {
		if f.Severity >= SeverityWarn && !seen[f.ID] {
			seen[f.ID] = true
			s.Findings[f.ID]++
		}
	}
	if d := time.Duration(r.DurationMS) * time.Millisecond; d > s.Slowest {
		s.Slowest, s.SlowestDomain = d, r.Domain
	}
}

// ExitVerdict is the worst verdict of the run: VerdictFail when any domain
// failed or was not a valid name, else VerdictWarn or VerdictPass.
func (s *Summary) ExitVerdict() string {
	switch {
	case s.Verdicts[VerdictFail] > 0 || s.Verdicts[VerdictError] > 0:
		return VerdictFail
	case s.Verdicts[VerdictWarn] > 0:
		return VerdictWarn
	}
	return VerdictPass
}

// WriteTable writes the summary as a small text table: verdicts, then the
// most frequent warn and fail findings (at most top), then throughput.
func (s *Summary) WriteTable(w io.Writer, top int) {
	fmt.Fprintf(w, "\n%-28s %8s %7s\n", "verdict", "domains", "share")
	total := max(s.Checked+s.Earlier, 1)
	for _, v := range []string{VerdictPass, VerdictWarn, VerdictFail, VerdictError} {
		fmt.Fprintf(w, "%-28s %8d %6.1f%%\n", v, s.Verdicts[v], 100*float64(s.Verdicts[v])/float64(total))
	}
	if s.Earlier > 0 {
		fmt.Fprintf(w, "%-28s %8d\n", "of which from earlier runs", s.Earlier)
	}
	if s.Skipped > 0 {
		fmt.Fprintf(w, "%-28s %8d\n", "skipped (already done)", s.Skipped)
	}
	if s.Duplicates > 0 {
		fmt.Fprintf(w, "%-28s %8d\n", "skipped (duplicate lines)", s.Duplicates)
	}
	type kv struct {
		id string
		n  int
	}
	var ks []kv
	for id, n := range s.Findings {
		ks = append(ks, kv{id, n})
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].n > ks[j].n || ks[i].n == ks[j].n && ks[i].id < ks[j].id })
	if len(ks) > 0 {
		fmt.Fprintf(w, "\n%-28s %8s\n", "top problems (warn/fail)", "domains")
		for i, k := range ks {
			if i == top {
				break
			}
			fmt.Fprintf(w, "%-28s %8d\n", k.id, k.n)
		}
	}
	rate := float64(s.Checked) / max(s.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "\n%d checked in %s (%.0f domains/s)", s.Checked, s.Elapsed.Round(time.Millisecond), rate)
	if s.SlowestDomain != "" {
		fmt.Fprintf(w, "; slowest %s (%s)", s.SlowestDomain, s.Slowest)
	}
	fmt.Fprintln(w)
}
