package tlsrpt

import (
	"errors"
	"testing"
	"time"
)

func TestFilenameF11(t *testing.T) { // F-11, RPT-DELIV-2, RPT-DELIV-3
	t.Parallel()
	const s = "mail.sndr.example.com!example.net!1470013207!1470186007!001.json.gz"
	f, err := ParseFilename(s)
	if err != nil {
		t.Fatal(err)
	}
	want := Filename{Sender: "mail.sndr.example.com", PolicyDomain: "example.net",
		Begin: time.Unix(1470013207, 0).UTC(), End: time.Unix(1470186007, 0).UTC(), UniqueID: "001", Gzip: true}
	if f != want {
		t.Errorf("got %+v, want %+v", f, want)
	}
	// Not midnight-aligned: 2016-08-01 01:00:07 UTC.
	if f.Begin != time.Date(2016, 8, 1, 1, 0, 7, 0, time.UTC) {
		t.Errorf("begin %v", f.Begin)
	}
	if f.String() != s {
		t.Errorf("String() = %q", f.String())
	}
	// RPT-DELIV-2 generation example; RPT-DELIV-3 extension.
	f.Gzip = false
	if got := f.String(); got != "mail.sndr.example.com!example.net!1470013207!1470186007!001.json" {
		t.Errorf("plain: %q", got)
	}
	f.UniqueID = ""
	if got := f.String(); got != "mail.sndr.example.com!example.net!1470013207!1470186007.json" {
		t.Errorf("no id: %q", got)
	}
}

var badFilenames = []string{
	"", "report.json", "a!b!1!2.xml", "a!b!1!2.json.zip", "a!b!1.json", "a!b!1!2!3!4.json",
	"a!b!x!2.json", "a!b!1!-2.json", "a!b!01!2.json", "a!!1!2.json", "a b!c!1!2.json",
	"a!b!1!2!.json", "a!b!1!2!x/y.json", ".a!b!1!2.json", "a!b!1!2!id!.json.gz",
	"a!b!1234567890123!2.json",
}

func TestFilenameBad(t *testing.T) {
	t.Parallel()
	for _, s := range badFilenames {
		if f, err := ParseFilename(s); !errors.Is(err, ErrFilename) {
			t.Errorf("ParseFilename(%q) = %+v, %v", s, f, err)
		}
	}
}

func FuzzParseFilename(f *testing.F) {
	f.Add("mail.sndr.example.com!example.net!1470013207!1470186007!001.json.gz")
	f.Add("a!b!0!0.json")
	for _, s := range badFilenames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fn, err := ParseFilename(s)
		if err != nil {
			return
		}
		fn2, err := ParseFilename(fn.String())
		if err != nil || fn2 != fn {
			t.Fatalf("round trip %q → %q: %+v %v", s, fn.String(), fn2, err)
		}
	})
}
