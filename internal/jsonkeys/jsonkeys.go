// Package jsonkeys checks the key style of mailsts's JSON output: every
// object key is lower snake_case (^[a-z][a-z0-9_]*$), so that scripts
// can rely on one spelling across commands and the HTTP API.
//
// Keys that are data rather than names (a domain, an RFC 8460 member
// such as "organization-name" inside an embedded wire-format report) are
// excluded by path, explicitly, by the caller. It is used by tests; no
// command imports it.
package jsonkeys

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Style is the key spelling every mailsts JSON object uses.
var style = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Valid reports whether key is lower snake_case.
func Valid(key string) bool { return style.MatchString(key) }

// Check decodes data (one JSON value, or JSON Lines: one value per line)
// and returns the paths of the keys that are not lower snake_case, sorted.
// Paths look like `[].repairs[].Code`: "[]" stands for any array element,
// "{}" for any key of an object excluded as data (see Skip).
//
// skip lists paths whose value is not checked: "[].report" skips the
// value under "report" of every element (an RFC 8460 report in its wire
// form); "domains.{}" checks the key "domains" but not the keys of the
// object under it (they are domain names), while the values under those
// keys are still checked.
func Check(data []byte, skip ...string) ([]string, error) {
	sk := map[string]bool{}
	for _, s := range skip {
		sk[s] = true
	}
	var bad []string
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(data)))
	dec.UseNumber()
	n := 0
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", n+1, err)
		}
		n++
		walk(v, "", sk, &bad)
	}
	if n == 0 {
		return nil, fmt.Errorf("no JSON value")
	}
	sort.Strings(bad)
	return slicesCompact(bad), nil
}

func walk(v any, path string, skip map[string]bool, bad *[]string) {
	if skip[path] && !strings.HasSuffix(path, "{}") {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		if skip[join(path, "{}")] {
			for _, e := range x {
				walk(e, join(path, "{}"), skip, bad)
			}
			return
		}
		for k, e := range x {
			p := join(path, k)
			if !Valid(k) {
				*bad = append(*bad, p)
			}
			walk(e, p, skip, bad)
		}
	case []any:
		for _, e := range x {
			walk(e, path+"[]", skip, bad)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func slicesCompact(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// Describe formats bad keys for a test failure.
func Describe(bad []string) string {
	return "keys not in lower snake_case: " + strings.Join(bad, ", ")
}
