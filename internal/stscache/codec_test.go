package stscache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts"
	"github.com/mailsts/mailsts/mtasts/mtaststest"
	"github.com/mailsts/mailsts/tlsrpt/result"
)

func TestEntryJSONRoundTrip(t *testing.T) { // STS-CACHE-1
	t.Parallel()
	for _, want := range mtaststest.SampleEntries(time.Now()) {
		b, err := encodeEntry(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("decode(%s): %v", b, err)
		}
		if d := mtaststest.EntryDiff(got, want); d != "" {
			t.Errorf("%s: %s", want.Domain, d)
		}
	}
}

// A value written before the failure's class and temporariness were
// fields decodes with the text only (mtasts reads the class from it, its
// legacy path); a value without a failure encodes as it did.
func TestEntryJSONLegacy(t *testing.T) { // STS-CACHE-1
	t.Parallel()
	old := `{"domain":"a.example","policy":null,"fetched_at":null,"checked_at":null,"no_policy_until":4102444800000,` +
		`"failed_at":1735689600000,"failures":1,"last_error":"dns-error+temporary: SERVFAIL","last_used":null}`
	e, err := decodeEntry([]byte(old))
	if err != nil || e.LastError != "dns-error+temporary: SERVFAIL" || e.LastErrorType != "" || e.LastErrorTemporary || e.Failures != 1 {
		t.Fatalf("decode old value: %+v, %v", e, err)
	}
	s := &Memory{}
	if err := s.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	r, err := (&mtasts.Cache{Store: s}).Get(context.Background(), "a.example")
	if err != nil || mtasts.ResultType(r.Err) != result.DNSError || !mtasts.Temporary(r.Err) || !mtasts.Remembered(r.Err) {
		t.Errorf("old value through the cache: %+v, %v", r, err)
	}

	ok := `{"domain":"a.example","policy":null,"fetched_at":null,"checked_at":1735689600000,"no_policy_until":4102444800000,"failed_at":null,"last_used":null}`
	e, err = decodeEntry([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := encodeEntry(e); err != nil || string(b) != ok {
		t.Errorf("re-encoded %s, %v; want %s", b, err, ok)
	}
}

func TestDecodeEntryBad(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"not json":          `{`,
		"array":             `[]`,
		"no domain":         `{"policy":null}`,
		"bad domain":        `{"domain":"a b"}`,
		"bad mode":          `{"domain":"a.example","policy":{"mode":"strict","mx":[],"max_age":1,"ext":null}}`,
		"negative max_age":  `{"domain":"a.example","policy":{"mode":"enforce","mx":[],"max_age":-1,"ext":null}}`,
		"huge max_age":      `{"domain":"a.example","policy":{"mode":"enforce","mx":[],"max_age":31557601,"ext":null}}`,
		"ext shape":         `{"domain":"a.example","policy":{"mode":"enforce","mx":[],"max_age":1,"ext":[["k"]]}}`,
		"negative failures": `{"domain":"a.example","failures":-1}`,
		"time type":         `{"domain":"a.example","fetched_at":"yesterday"}`,
		"oversized":         `{"domain":"a.example","last_error":"` + string(make([]byte, MaxEntrySize)) + `"}`,
	}
	for name, in := range bad {
		if _, err := decodeEntry([]byte(in)); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("%s: decodeEntry = %v, want ErrCorruptEntry", name, err)
		}
	}
}

// FuzzDecodeEntry: decoding never panics, and whatever decodes re-encodes
// to an entry that decodes to the same thing.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range mtaststest.SampleEntries(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)) {
		b, err := encodeEntry(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"domain":"a.example","policy":{"mode":"none","mx":null,"max_age":0,"ext":[]},"last_used":-62135596800000}`))
	f.Add([]byte(`{"domain":"a.example","fetched_at":1e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptEntry) {
				t.Fatalf("error %v does not match ErrCorruptEntry", err)
			}
			return
		}
		b2, err := encodeEntry(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := decodeEntry(b2)
		if err != nil {
			t.Fatalf("decode(encode(e)) of %s: %v", b2, err)
		}
		if d := mtaststest.EntryDiff(e2, e); d != "" {
			t.Fatalf("round trip of %s: %s", b2, d)
		}
	})
}
