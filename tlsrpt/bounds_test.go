package tlsrpt

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// bombReport returns a report whose first policy's failure-details array
// holds n copies of elem (elem may contain %d, replaced by the index).
func bombReport(n int, elem string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"organization-name":"Bomb","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-01T23:59:59Z"},` +
		`"contact-info":"x@bomb.example","report-id":"bomb","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1"],` +
		`"policy-domain":"example.org","mx-host":["mx.example.org"]},"summary":{"total-successful-session-count":1,"total-failure-session-count":1},` +
		`"failure-details":[`)
	indexed := strings.Contains(elem, "%d")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if indexed {
			fmt.Fprintf(&b, elem, i)
		} else {
			b.WriteString(elem)
		}
	}
	b.WriteString(`]}]}`)
	return b.Bytes()
}

// allocated returns the bytes allocated while f ran. The callers do not
// call t.Parallel: sequential tests run alone, before the parallel ones,
// so no other test's allocations are counted.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// retained returns the growth of the live heap over f, f's results kept.
func retained(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}

// TestParseDetailBomb: issue #11.3. A 19 KB gzip body of 6.5 million empty
// failure details got the receiver OOM-killed at 3 GB. Decode and Parse
// now read the details one at a time and merge identical ones, so the
// whole request allocates a few times the decompressed size and keeps one
// detail (RPT-RECV-2, RPT-AGG-9).
func TestParseDetailBomb(t *testing.T) { // RPT-RECV-2, RPT-AGG-9
	// Not parallel: allocated() measures the whole process.
	const n = 6_500_000
	js := bombReport(n, `{}`)
	body := gzipBytes(t, js)
	t.Logf("bomb: %d details, %d bytes JSON, %d bytes gzip", n, len(js), len(body))
	if len(body) > 64<<10 {
		t.Fatalf("bomb body %d bytes, want a small one", len(body))
	}
	js = nil
	var rep *Report
	var repairs []Repair
	var err error
	got := allocated(func() {
		var out []byte
		out, _, err = Decode(bytes.NewReader(body), MediaTypeGzip, Limits{})
		if err != nil {
			return
		}
		rep, repairs, err = Parse(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Decode+Parse allocated %.1f MiB", float64(got)/(1<<20))
	// The decompressed JSON alone is 19.5 MB, read into a growing buffer;
	// before the fix Parse needed more than 3 GB.
	bound := uint64(96 << 20)
	if raceEnabled {
		bound *= 2
	}
	if got > bound {
		t.Errorf("Decode+Parse allocated %d bytes for the bomb, want < %d MiB", got, bound>>20)
	}
	fd := rep.Policies[0].FailureDetails
	if len(fd) != 1 || fd[0].ResultType != "" || fd[0].FailedSessionCount != 0 {
		t.Errorf("details = %+v, want the %d empty ones merged into one", fd, n)
	}
	if !hasRepair(repairs, "failure-details-merged") || !hasRepair(repairs, "repairs-truncated") {
		t.Errorf("repairs = %v", repairCodes(repairs))
	}
	// The list stops at maxRepairs plus the truncation marker and the
	// summaries of merged and dropped details.
	if len(repairs) > maxRepairs+3 {
		t.Errorf("%d repairs, want at most %d", len(repairs), maxRepairs+3)
	}
}

// TestParseDistinctDetailBomb: distinct details cannot be merged; beyond
// the caps they are dropped and counted, and memory stays bounded.
func TestParseDistinctDetailBomb(t *testing.T) { // RPT-RECV-2
	// Not parallel: allocated() and retained() measure the whole process.
	const n = 400_000
	js := bombReport(n, `{"result-type":"r%d","failed-session-count":2}`)
	var rep *Report
	var repairs []Repair
	var err error
	var got uint64
	kept := retained(func() {
		got = allocated(func() { rep, repairs, err = Parse(js) })
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Parse of %d bytes (%d distinct details): allocated %.1f MiB, retained %.1f MiB",
		len(js), n, float64(got)/(1<<20), float64(kept)/(1<<20))
	// encoding/json's tokenizer allocates per scalar (about 20 bytes per
	// input byte here), all of it garbage at once; what Parse keeps is
	// bounded by the caps.
	perByte := uint64(40)
	if raceEnabled {
		perByte *= 2
	}
	if got > perByte*uint64(len(js)) {
		t.Errorf("allocated %d bytes, want < %d per input byte", got, perByte)
	}
	if kept > 8<<20 {
		t.Errorf("retained %d bytes after Parse, want < 8 MiB", kept)
	}
	fd := rep.Policies[0].FailureDetails
	if len(fd) != MaxFailureDetails || fd[0].ResultType != "r0" || fd[MaxFailureDetails-1].ResultType != ResultType(fmt.Sprint("r", MaxFailureDetails-1)) {
		t.Fatalf("%d details kept, want the first %d", len(fd), MaxFailureDetails)
	}
	var capped *Repair
	for i := range repairs {
		if repairs[i].Code == "failure-details-capped" {
			capped = &repairs[i]
		}
	}
	want := fmt.Sprintf("%d distinct details (%d failed sessions)", n-MaxFailureDetails, 2*(n-MaxFailureDetails))
	if capped == nil || !strings.Contains(capped.Detail, want) {
		t.Errorf("capped repair = %v, want one saying %q", capped, want)
	}
}

func TestParseDetailMergeAndCaps(t *testing.T) { // RPT-AGG-9, RPT-AGG-4
	t.Parallel()
	// Identical details but for the count are merged, counts summed, in
	// first-seen order.
	js := bombReport(5, `{"result-type":"certificate-expired","receiving-ip":"192.0.2.1","failed-session-count":3}`)
	js = bytes.Replace(js, []byte(`"failure-details":[`), []byte(`"failure-details":[{"result-type":"starttls-not-supported","failed-session-count":1},`), 1)
	rep, repairs, err := Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	fd := rep.Policies[0].FailureDetails
	if len(fd) != 2 || fd[0].ResultType != ResultSTARTTLSNotSupported || fd[1].FailedSessionCount != 15 {
		t.Errorf("details = %+v", fd)
	}
	if !hasRepair(repairs, "failure-details-merged") || !hasRepair(repairs, "failure-count-mismatch") {
		t.Errorf("repairs = %v", repairCodes(repairs))
	}
	if _, err := ParseStrict(js); !errors.Is(err, ErrNotStrict) {
		t.Errorf("ParseStrict: %v, want ErrNotStrict (merging changed the data)", err)
	}

	// Merged counts above 2^53 are not a count.
	js = bombReport(3, fmt.Sprintf(`{"result-type":"certificate-expired","failed-session-count":%d}`, int64(MaxCount)))
	if _, _, err := Parse(js); !errors.Is(err, ErrSyntax) {
		t.Errorf("merged sum above 2^53: %v, want ErrSyntax", err)
	}
	// A bad detail still fails the report, wherever it is.
	js = bombReport(3, `{"result-type":"x","failed-session-count":-%d}`)
	if _, _, err := Parse(js); !errors.Is(err, ErrSyntax) {
		t.Errorf("negative count: %v, want ErrSyntax", err)
	}

	// The per-report cap: 11 policies of 1,000 distinct details keep
	// 10,000 in all.
	var b strings.Builder
	b.WriteString(`{"organization-name":"O","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-02T00:00:00Z"},"report-id":"r","policies":[`)
	for p := range 11 {
		if p > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"policy":{"policy-type":"sts","policy-domain":"d%d.example"},"summary":{"total-successful-session-count":0,"total-failure-session-count":1000},"failure-details":[`, p)
		for i := range MaxFailureDetails {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"result-type":"validation-failure","failure-reason-code":"c%d","failed-session-count":1}`, i)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	rep, repairs, err = Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range rep.Policies {
		total += len(p.FailureDetails)
	}
	if total != MaxReportFailureDetails || len(rep.Policies[10].FailureDetails) != 0 || !hasRepair(repairs, "failure-details-capped") {
		t.Errorf("%d details kept over all policies, want %d", total, MaxReportFailureDetails)
	}
}

func TestParseTooManyValues(t *testing.T) { // RPT-RECV-2
	t.Parallel()
	head := `{"organization-name":"O","date-range":{"start-datetime":"2025-01-01T00:00:00Z","end-datetime":"2025-01-02T00:00:00Z"},"report-id":"r",`
	pol := `{"policy":{"policy-type":"no-policy-found","policy-domain":"example.org"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}`
	cases := map[string]string{
		"policies": head + `"policies":[` + strings.Repeat(pol+",", MaxPolicies) + pol + `]}`,
		"policy-string": head + `"policies":[{"policy":{"policy-type":"sts","policy-string":[` + strings.Repeat(`"a",`, maxNodes) +
			`"a"]},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}`,
		"unknown member": head + `"x":[` + strings.Repeat(`[],`, maxNodes) + `[]],"policies":[` + pol + `]}`,
	}
	for name, js := range cases {
		if _, _, err := Parse([]byte(js)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", name, err)
		}
	}
	// At the policy cap exactly, the report parses.
	if r, _, err := Parse([]byte(head + `"policies":[` + strings.Repeat(pol+",", MaxPolicies-1) + pol + `]}`)); err != nil || len(r.Policies) != MaxPolicies {
		t.Errorf("%d policies: %v", MaxPolicies, err)
	}
	// An object with many members keeps the first of each name (the
	// duplicate check switches to a map).
	var b strings.Builder
	b.WriteString(head + `"policies":[` + pol + `],"x":{`)
	for i := range 5000 {
		fmt.Fprintf(&b, `"k%d":1,`, i%2500)
	}
	b.WriteString(`"k0":2}}`)
	_, repairs, err := Parse([]byte(b.String()))
	if err != nil || !hasRepair(repairs, "duplicate-member") || !hasRepair(repairs, "repairs-truncated") {
		t.Errorf("many members: %v %v", err, repairCodes(repairs))
	}
}

func TestTotalsSaturate(t *testing.T) {
	t.Parallel()
	r := &Report{}
	for range MaxPolicies + 24 {
		r.Policies = append(r.Policies, PolicyResult{Summary: Summary{TotalSuccessfulSessionCount: MaxCount, TotalFailureSessionCount: 1}})
	}
	if s, f := r.Totals(); s != 1<<63-1 || f != int64(MaxPolicies+24) {
		t.Errorf("Totals = %d, %d", s, f)
	}
}

// TestParseMessageOutputBudget: the decompressed cap holds for the whole
// message, not per part (64 parts of 20 MB each were 1.3 GB).
func TestParseMessageOutputBudget(t *testing.T) { // RPT-RECV-2
	t.Parallel()
	part := gzipBytes(t, append([]byte("{"), bytes.Repeat([]byte(" "), 400<<10)...))
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/report; report-type=tlsrpt; boundary=x\r\n\r\n")
	for range 3 {
		b.WriteString("--x\r\nContent-Type: application/tlsrpt+gzip\r\n\r\n")
		b.Write(part)
		b.WriteString("\r\n")
	}
	b.WriteString("--x--\r\n")
	lim := Limits{MaxInput: 1 << 20, MaxOutput: 1 << 20}
	if _, err := ParseMessage(bytes.NewReader(b.Bytes()), lim); !errors.Is(err, ErrTooLarge) {
		t.Errorf("3 parts of 400 KiB under a 1 MiB budget: %v, want ErrTooLarge", err)
	}
	lim.MaxOutput = 2 << 20
	if m, err := ParseMessage(bytes.NewReader(b.Bytes()), lim); err != nil || len(m.Attachments) != 3 {
		t.Errorf("under a 2 MiB budget: %v", err)
	}
}
