package outgoing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/sqlitedb"
	"github.com/mailsts/mailsts/tlsrpt"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

// RPT-AGG-3, RPT-AGG-4: successes and failures are counted per policy;
// identical failure details merge and count sessions.
func TestStoreCountsAndMerges(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st := open(t, Options{})
		ctx := ctxT(t)
		expired := Failure{ResultType: result.CertificateExpired, SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx1.mail.example.com", ReceivingIP: "198.51.100.7"}
		mismatch := Failure{ResultType: result.CertificateHostMismatch, ReceivingMXHostname: "mx1.mail.example.com"}
		if err := st.Add(ctx, ok("Example.COM.", day1), ok("example.com", day1.Add(time.Hour)),
			fail("example.com", day1, expired, mismatch), fail("example.com", day1, expired)); err != nil {
			t.Fatal(err)
		}
		// A second batch merges into the same rows.
		if err := st.Add(ctx, fail("example.com", day1, expired),
			Result{Time: day1, PolicyDomain: "example.com", Policy: Policy{Type: "no-policy-found"}},
			ok("example.com", day1.Add(24*time.Hour)), ok("other.example", day1)); err != nil {
			t.Fatal(err)
		}
		got, err := st.Policies(ctx, DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start})
		if err != nil {
			t.Fatal(err)
		}
		want := []tlsrpt.PolicyResult{
			{Policy: tlsrpt.Policy{Type: "no-policy-found", String: []string{}, Domain: "example.com", MXHost: []string{}},
				Summary: tlsrpt.Summary{TotalSuccessfulSessionCount: 1}},
			{Policy: tlsrpt.Policy{Type: "sts", String: stsPolicy().Strings, Domain: "example.com", MXHost: stsPolicy().MXHosts},
				Summary: tlsrpt.Summary{TotalSuccessfulSessionCount: 2, TotalFailureSessionCount: 3},
				FailureDetails: []tlsrpt.FailureDetails{
					{ResultType: result.CertificateExpired, SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx1.mail.example.com", ReceivingIP: "198.51.100.7", FailedSessionCount: 3},
					{ResultType: result.CertificateHostMismatch, ReceivingMXHostname: "mx1.mail.example.com", FailedSessionCount: 1},
				}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Policies:\n got %+v\nwant %+v", got, want)
		}
		pend, err := st.Pending(ctx, day1.Add(72*time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(pend) != 3 || pend[0].Domain != "example.com" || pend[1].Domain != "other.example" || !pend[2].Day.Equal(tlsrpt.DayRange(day1.Add(24*time.Hour)).Start) {
			t.Errorf("Pending = %v", pend)
		}
		// Days not finished (the day of before and later) are not pending.
		if pend, _ := st.Pending(ctx, day1, 0); len(pend) != 0 {
			t.Errorf("Pending(day1) = %v, want none", pend)
		}
	})
}

// The cap on distinct failure-detail rows per policy and day: beyond it
// details merge into one row per result type; totals stay exact.
func TestStoreDetailCap(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st := open(t, Options{MaxDetails: 3})
		ctx := ctxT(t)
		var rs []Result
		for i := range 10 {
			rs = append(rs, fail("example.com", day1, Failure{ResultType: result.CertificateExpired, ReceivingIP: fmt.Sprintf("198.51.100.%d", i)}))
		}
		if err := st.Add(ctx, rs[:5]...); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs[5:] { // one by one: the cap holds across transactions
			if err := st.Add(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Add(ctx, rs[0], fail("example.com", day1, Failure{ResultType: result.STARTTLSNotSupported})); err != nil {
			t.Fatal(err)
		}
		got, err := st.Policies(ctx, DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("policies = %d", len(got))
		}
		p := got[0]
		if p.Summary.TotalFailureSessionCount != 12 {
			t.Errorf("failures = %d, want 12", p.Summary.TotalFailureSessionCount)
		}
		var sum int64
		overflow := map[result.Type]int64{}
		for _, d := range p.FailureDetails {
			sum += d.FailedSessionCount
			if d.AdditionalInformation == overflowInfo {
				overflow[d.ResultType] = d.FailedSessionCount
			}
		}
		if sum != 12 {
			t.Errorf("detail sessions = %d, want 12", sum)
		}
		// 3 capped rows + overflow rows for both types.
		if len(p.FailureDetails) != 5 || overflow[result.CertificateExpired] != 7 || overflow[result.STARTTLSNotSupported] != 1 {
			t.Errorf("details = %+v", p.FailureDetails)
		}
		if err := (&tlsrpt.Report{OrganizationName: "o", ContactInfo: "a@b.example", ReportID: "x", DateRange: tlsrpt.DayRange(day1), Policies: got}).Validate(); err != nil {
			t.Errorf("capped report invalid: %v", err)
		}
	})
}

// A result the report could not carry is refused before anything is
// written (RPT-JSON-7, RPT-JSON-11, RPT-RES-12 for local classes).
func TestStoreRefusesInvalid(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	long := strings.Repeat("a", maxLineLen+1)
	for name, r := range map[string]Result{
		"empty domain":          ok("", day1),
		"unknown policy type":   {PolicyDomain: "example.com", Policy: Policy{Type: "dane"}},
		"no-policy with lines":  {PolicyDomain: "example.com", Policy: Policy{Type: "no-policy-found", Strings: []string{"version: STSv1"}}},
		"sts without lines":     {PolicyDomain: "example.com", Policy: Policy{Type: "sts"}},
		"tlsa line malformed":   {PolicyDomain: "example.com", Policy: Policy{Type: "tlsa", Strings: []string{"3 1 1 zz"}}},
		"local result type":     fail("example.com", day1, Failure{ResultType: result.NoPolicy}),
		"unregistered type":     fail("example.com", day1, Failure{ResultType: "made-up"}),
		"bad ip":                fail("example.com", day1, Failure{ResultType: result.CertificateExpired, ReceivingIP: "300.1.1.1"}),
		"IPv6 not RFC 5952":     fail("example.com", day1, Failure{ResultType: result.CertificateExpired, SendingMTAIP: "2001:DB8::1"}),
		"U-label domain":        ok("bücher.example", day1),
		"long policy line":      {PolicyDomain: "example.com", Policy: Policy{Type: "sts", Strings: []string{"mx: " + long}}},
		"too many failures":     fail("example.com", day1, make([]Failure, maxFailures+1)...),
		"invalid UTF-8 in info": fail("example.com", day1, Failure{ResultType: result.CertificateExpired, AdditionalInfo: "\xff"}),
	} {
		t.Run(name, func(t *testing.T) {
			err := st.Add(ctxT(t), ok("good.example", day1), r)
			if !errors.Is(err, ErrInvalidResult) {
				t.Fatalf("Add = %v, want ErrInvalidResult", err)
			}
		})
	}
	if pend, err := st.Pending(ctxT(t), day1.Add(48*time.Hour), 0); err != nil || len(pend) != 0 {
		t.Errorf("a refused batch wrote: %v %v", pend, err)
	}
}

func TestStoreClipsLongMembers(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	info := strings.Repeat("é", maxInfoLen) // 2 bytes each: the cut must not split one
	if err := st.Add(ctxT(t), fail("example.com", day1, Failure{ResultType: result.ValidationFailure, AdditionalInfo: info})); err != nil {
		t.Fatal(err)
	}
	got, err := st.Policies(ctxT(t), DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start})
	if err != nil {
		t.Fatal(err)
	}
	if a := got[0].FailureDetails[0].AdditionalInformation; len(a) != maxInfoLen || !strings.HasPrefix(info, a) {
		t.Errorf("additional information kept %d bytes", len(a))
	}
}

func TestStoreExpire(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st := open(t, Options{})
		ctx := ctxT(t)
		old := DomainDay{Domain: "example.com", Day: tlsrpt.DayRange(day1).Start}
		if err := st.Add(ctx, fail("example.com", day1, Failure{ResultType: result.CertificateExpired}), ok("example.com", day1.Add(48*time.Hour))); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Claim(ctx, old, "n1", day1, time.Minute); err != nil {
			t.Fatal(err)
		}
		n, err := st.Expire(ctx, day1.Add(24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("Expire = %d, %v; want 1", n, err)
		}
		if got, _ := st.Policies(ctx, old); len(got) != 0 {
			t.Errorf("expired day still has %v", got)
		}
		if _, found, _ := st.ClaimOf(ctx, old); found {
			t.Error("expired claim kept")
		}
		if pend, _ := st.Pending(ctx, day1.Add(72*time.Hour), 0); len(pend) != 1 {
			t.Errorf("Pending after expiry = %v, want the later day", pend)
		}
	})
}

// The store's tables and version are its own: another component's
// version table in the same database is left alone, reopening migrates
// nothing, and a newer schema is refused.
func TestStoreSchemaOwnVersion(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	db, err := sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.Exec(`CREATE TABLE outbox_schema_version (version INTEGER NOT NULL); INSERT INTO outbox_schema_version VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		st, err := OpenSQLite(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	var v int
	if err := db.R.QueryRow(`SELECT version FROM outbox_schema_version`).Scan(&v); err != nil || v != 7 {
		t.Errorf("other component's version = %d, %v", v, err)
	}
	if err := db.R.QueryRow(`SELECT version FROM outgoing_schema_version`).Scan(&v); err != nil || v != len(sqliteMigrations()) {
		t.Errorf("own version = %d, %v", v, err)
	}
	if _, err := db.W.Exec(`UPDATE outgoing_schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenSQLite(context.Background(), path, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenSpec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := Open(context.Background(), "", filepath.Join(dir, "state"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, "state", DefaultFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), "mysql://x", dir, Options{}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("bad spec: %v", err)
	}
}

func openSQLite(t *testing.T) *Store {
	t.Helper()
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "send.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// A write whose context has ended stores nothing, neither results nor a
// cursor, on either backend (on SQLite the statements run detached from
// ctx, which is checked between policies and before the commit); the
// store works on afterwards.
func TestAddContextEnded(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open opener) {
		st := open(t, Options{})
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		r, err := normalize(ok("ended.example", day1), day1)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.add(ended, []normalized{newNormalized(r)}, map[string]string{"log": "c1"}); err == nil {
			t.Fatal("add with an ended context succeeded")
		}
		dd := DomainDay{Domain: "ended.example", Day: day1.Truncate(24 * time.Hour)}
		if ps, err := st.Policies(ctxT(t), dd); err != nil || len(ps) != 0 {
			t.Fatalf("after an ended write: %d policies stored (%v)", len(ps), err)
		}
		if _, found, err := st.Cursor(ctxT(t), "log"); err != nil || found {
			t.Fatalf("after an ended write: cursor stored %v (%v)", found, err)
		}
		if err := st.Add(ctxT(t), ok("ended.example", day1)); err != nil {
			t.Fatal(err)
		}
		if ps, err := st.Policies(ctxT(t), dd); err != nil || len(ps) != 1 {
			t.Fatalf("then: %d policies (%v), want 1", len(ps), err)
		}
	})
}
