package stscache

import (
	"errors"
	"testing"
	"time"

	"github.com/mailsts/mailsts/mtasts/mtaststest"
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
