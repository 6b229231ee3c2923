package tlsrpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// tokenCases are inputs where a tokenizer easily parts from
// json.Decoder: escapes, surrogates, invalid UTF-8, numbers, literals,
// separators, nesting and what follows the top-level value.
var tokenCases = []string{
	``, ` `, " \t\r\n", "\f", "\x00", "\xef\xbb\xbf{}",
	`{}`, `[]`, `{} `, `{}{}`, `{} {}`, `1 2`, `"a" "b"`, `{}]`, `{}}`, `{},`, `{}:`, `[]x`, `{} x`, `nullx`,
	`"\"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u20ac"`, `"\uD83D\uDE00"`, `"\ud83d\ude00x"`,
	`"\uD83D"`, `"\uDE00"`, `"\uD83Dx"`, `"\uD83D\u0041"`, `"\uD83D\uD83D\uDE00"`, `"\uDE00\uD83D"`,
	`"\uD83D\n"`, `"\uD83D\uZZZZ"`, `"\uD83D\u12"`, `"\uD83D\`, `"\uD83D\u`, `"\u12"`, `"\u12`, `"\u"`, `"\uG000"`,
	`"\'"`, `"\x"`, `"\`, `"abc`, `"`, "\"a\x01\"", "\"a\x1f\"", "\"a\x7f\"", "\"\t\"", "\"\n\"",
	"\"\xff\"", "\"a\xc3\"", "\"\xc3\xa9\"", "\"\xe2\x82\"", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"", "\"\xf4\x90\x80\x80\"",
	"\"\xff\\n\"", "{\"\xff\":1}", "\xff", "[\xff]",
	`0`, `-0`, `-`, `-x`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `1ex`, `01`, `-01`, `00`, `[00]`, `-00.5`, `1.`, `1.x`, `.5`, `1.5e3`, `+1`,
	`123456789012345678901234567890`, `[1.]`, `[01]`, `[1 2]`, `[-]`, `[1e]`, `[0x1]`, `[1true]`, `[-0.0e-0]`,
	`true`, `false`, `null`, `tru`, `nul`, `fals`, `trUe`, `True`, `[nil]`, `[truex]`, `[t]`,
	`[1,]`, `[,1]`, `[1,,2]`, `[1 ,2 , 3]`, `[1:2]`, `["a":1]`, `[`, `[1`, `[1,`, `]`, `}`, `:`, `,`,
	`{,}`, `{"a" 1}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a"::1}`, `{1:2}`, `{"a":1:2}`, `{"a",1}`, `{"a"}`,
	`{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `{]`, `[}`, `{"a":[}]}`, `{"a":{"b":[1,{"c":null}]}}`,
	"{\"a\":\"b\"\n,\r\"c\"\t:\t\"d\"}", "{\"a\"\v:1}", `{"":""}`, `[[[[[[[[[[]]]]]]]]]]`,
	strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
	strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000),
	strings.Repeat("[", 100),
}

// step is one call's outcome: a token or More's answer, and an error.
type step struct {
	tok  json.Token
	more bool
	err  error
}

func (s step) String() string {
	return fmt.Sprintf("%T(%#v) more=%v err=%v", s.tok, s.tok, s.more, s.err)
}

// tokenReader is what the two tokenizers have in common.
type tokenReader interface {
	Token() (json.Token, error)
	More() bool
}

// walk reads a JSON text the way the parser does (More before each
// element of an array or object, Token for everything), then reads
// tokens until an error, recording every call's outcome. It stops at the
// first error: the Decoder's state after one is not worth copying.
func walk(r tokenReader) []step {
	var steps []step
	add := func(s step) bool {
		steps = append(steps, s)
		return s.err == nil && len(steps) < 1e6
	}
	var value func() bool
	value = func() bool {
		tok, err := r.Token()
		if !add(step{tok: tok, err: err}) {
			return false
		}
		if d, ok := tok.(json.Delim); ok && (d == '[' || d == '{') {
			for {
				more := r.More()
				if !add(step{more: more}) {
					return false
				}
				if !more {
					break
				}
				if d == '{' {
					tok, err := r.Token()
					if !add(step{tok: tok, err: err}) {
						return false
					}
				}
				if !value() {
					return false
				}
			}
			tok, err := r.Token()
			return add(step{tok: tok, err: err})
		}
		return true
	}
	if value() {
		for {
			tok, err := r.Token()
			if !add(step{tok: tok, err: err}) {
				break
			}
		}
	}
	return steps
}

// checkTokens compares the steps of json.Decoder and of tokens on data.
func checkTokens(t *testing.T, data []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	want := walk(dec)
	got := walk(newTokens(data))
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g step
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if !reflect.DeepEqual(w.tok, g.tok) || w.more != g.more ||
			(w.err == nil) != (g.err == nil) ||
			(w.err == io.EOF) != (g.err == io.EOF) ||
			errors.Is(w.err, io.ErrUnexpectedEOF) != errors.Is(g.err, io.ErrUnexpectedEOF) ||
			i >= len(want) || i >= len(got) {
			t.Fatalf("%.200q: step %d: got %v, want %v", data, i, g, w)
		}
	}
}

func TestTokensMatchDecoder(t *testing.T) {
	t.Parallel()
	for _, c := range tokenCases {
		checkTokens(t, []byte(c))
		// Inside an array, and inside an object as a key and a value.
		checkTokens(t, []byte("["+c+"]"))
		checkTokens(t, []byte("{"+c+":"+c+"}"))
	}
}

// The tokens themselves, not only their agreement with the Decoder.
func TestTokensValues(t *testing.T) {
	t.Parallel()
	in := `{"s":"\ud83d\ude00\uDE00\u00e9` + "\xff" + `","n":[-0,1.5e3],"l":[true,false,null]}`
	want := []json.Token{json.Delim('{'), "s", "😀\ufffd\u00e9\ufffd", "n", json.Delim('['),
		json.Number("-0"), json.Number("1.5e3"), json.Delim(']'), "l", json.Delim('['),
		true, false, nil, json.Delim(']'), json.Delim('}')}
	tk := newTokens([]byte(in))
	for i, w := range want {
		g, err := tk.Token()
		if err != nil || !reflect.DeepEqual(g, w) {
			t.Fatalf("token %d: %#v, %v; want %#v", i, g, err, w)
		}
	}
	if _, err := tk.Token(); err != io.EOF {
		t.Fatalf("after the value: %v, want io.EOF", err)
	}
}

func FuzzTokensMatchDecoder(f *testing.F) {
	for _, name := range []string{"f10a.json", "f10b.json", "f10c.json"} {
		f.Add(readTestdata(f, name))
	}
	for _, name := range quirkJSONFiles {
		f.Add(readTestdata(f, "quirks/"+name))
	}
	for _, c := range tokenCases {
		// The deep nestings stay in the table test: the fuzzer spends
		// its time minimizing inputs that large.
		if len(c) <= 4096 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkTokens(t, data)
	})
}

// controlCases are inputs for the control-character check: raw control
// characters inside and outside strings, after backslashes, in
// unterminated strings.
var controlCases = []string{
	"", `{}`, "{\n\t\"a\": \"b\"\r\n}", "{\"a\": \"b\nc\"}", "{\"a\": \"b\tc\"}", "\"\x01\"",
	"\x01\"a\"", `"a\"` + "\n" + `"`, "\"a\\\n\"", "\"a\\\\\n\"", "\"abc", "\"ab\x1f", "\"ab\\", `"a""b"` + "\n",
	"\"é\x7f\"", "[\"a\", 1, \"\x00\"]",
}

// controlInString (the common case's fast check) finds a control
// character inside a string exactly when the byte-by-byte repair
// changes something.
func TestControlInString(t *testing.T) {
	t.Parallel()
	for _, c := range controlCases {
		_, n := escapeControlChars([]byte(c))
		if got := controlInString([]byte(c)); got != (n > 0) {
			t.Errorf("controlInString(%q) = %v; the repair changed %d", c, got, n)
		}
	}
}

func FuzzControlInString(f *testing.F) {
	for _, c := range controlCases {
		f.Add([]byte(c))
	}
	f.Add(readTestdata(f, "f10b.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, n := escapeControlChars(data)
		if got := controlInString(data); got != (n > 0) {
			t.Errorf("controlInString(%q) = %v; the repair changed %d", data, got, n)
		}
	})
}
