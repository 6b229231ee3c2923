package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCSVOutput runs every command that prints CSV (a --csv flag in the
// command table) on real data, with --csv and with --json, and checks the
// CSV: a header of lower snake_case keys that are the JSON keys, and each
// cell equal to the JSON value (numbers as plain numbers, no separators
// or units; a missing or null value empty).
func TestCSVOutput(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	quirks, _ := filepath.Glob(filepath.Join("..", "..", "tlsrpt", "testdata", "quirks", "*.json"))
	junk := filepath.Join(t.TempDir(), "junk.json")
	os.WriteFile(junk, []byte(`{"policies": `), 0o600)
	if code, out, errOut := runStdin(t, nil, state, append([]string{"tlsrpt", "ingest", "--dkim", "off"}, append(quirks, junk)...)...); code != ExitRejected {
		t.Fatalf("ingest: %d\n%s%s", code, out, errOut)
	}
	cases := [][]string{
		{"tlsrpt", "summary"},
		{"tlsrpt", "summary", "--group-by", "day,domain,org,mx,type,result"},
		{"tlsrpt", "summary", "--group-by", "result"},
		{"tlsrpt", "failures"},
		{"tlsrpt", "rejected"},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[strings.Join(c[:2], " ")] = true
	}
	docs, err := describe()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		for _, x := range append([]cmdDoc{d}, d.subs...) {
			for _, f := range x.flags {
				if f.Name == "csv" && !covered[x.name] {
					t.Errorf("mailsts %s has --csv but no case in this test", x.name)
				}
			}
		}
	}
	for _, c := range cases {
		t.Run(strings.Join(c, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runStdin(t, nil, state, append(c, "--csv")...)
			if code != ExitOK {
				t.Fatalf("--csv: exit %d\n%s", code, errOut)
			}
			recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil || len(recs) < 2 {
				t.Fatalf("CSV: %v, %d records\n%s", err, len(recs), out)
			}
			code, jout, errOut := runStdin(t, nil, state, append(c, "--json")...)
			if code != ExitOK {
				t.Fatalf("--json: exit %d\n%s", code, errOut)
			}
			var rows []map[string]any
			dec := json.NewDecoder(strings.NewReader(jout))
			dec.UseNumber() // the number as JSON spells it
			if err := dec.Decode(&rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(recs)-1 {
				t.Fatalf("%d JSON rows, %d CSV records", len(rows), len(recs)-1)
			}
			header := recs[0]
			for _, k := range header {
				if !csvKey.MatchString(k) {
					t.Errorf("CSV header %q is not lower snake_case", k)
				}
			}
			for i, row := range rows {
				for j, k := range header {
					cell := recs[i+1][j]
					want := ""
					if v := row[k]; v != nil {
						want = fmt.Sprint(v)
					}
					if cell != want {
						t.Errorf("row %d column %s: CSV %q, JSON %q", i, k, cell, want)
					}
				}
			}
		})
	}
}
