package tlsrpt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// tokens reads JSON tokens from a whole input held in memory. It yields
// exactly what a json.Decoder with UseNumber yields from Token and More,
// errors included (where, not the wording), so the parser can use either;
// it is here because the Decoder's Token, which re-scans each scalar with
// its full scanner and decodes it through reflection, was most of Parse's
// cost. FuzzTokensMatchDecoder holds the two to the same stream.
//
// Like the Decoder it is a stream reader: after a top-level value it reads
// another, and it returns io.EOF when only white space is left, wherever
// that happens. After an error its state is undefined.
type tokens struct {
	data  []byte
	pos   int
	state byte   // what may come next: one of the ts constants
	stack []byte // the states to return to when the open arrays and objects close
	buf   []byte // scratch for strings with escapes or invalid UTF-8
}

// The states of json.Decoder's Token, named the same way.
const (
	tsTopValue byte = iota
	tsArrayStart
	tsArrayValue
	tsArrayComma
	tsObjectStart
	tsObjectKey
	tsObjectColon
	tsObjectValue
	tsObjectComma
)

func newTokens(data []byte) *tokens {
	return &tokens{data: data}
}

// peek skips white space and returns the next byte; false at the end.
func (t *tokens) peek() (byte, bool) {
	for ; t.pos < len(t.data); t.pos++ {
		switch c := t.data[t.pos]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c, true
		}
	}
	return 0, false
}

// More reports whether the current array or object has another element.
// As the Decoder's, it looks only at the next byte, not at the state.
func (t *tokens) More() bool {
	c, ok := t.peek()
	return ok && c != ']' && c != '}'
}

// Token returns the next token: a json.Delim, string, json.Number, bool
// or nil. Commas and colons are checked and skipped.
func (t *tokens) Token() (json.Token, error) {
	for {
		c, ok := t.peek()
		if !ok {
			return nil, io.EOF
		}
		switch c {
		case '[', '{':
			if !t.valueAllowed() {
				return nil, t.unexpected(c)
			}
			t.pos++
			t.stack = append(t.stack, t.state)
			t.state = tsArrayStart
			if c == '{' {
				t.state = tsObjectStart
			}
			return json.Delim(c), nil
		case ']', '}':
			if c == ']' && t.state != tsArrayStart && t.state != tsArrayComma ||
				c == '}' && t.state != tsObjectStart && t.state != tsObjectComma {
				return nil, t.unexpected(c)
			}
			t.pos++
			t.state = t.stack[len(t.stack)-1]
			t.stack = t.stack[:len(t.stack)-1]
			t.valueEnd()
			return json.Delim(c), nil
		case ':':
			if t.state != tsObjectColon {
				return nil, t.unexpected(c)
			}
			t.pos++
			t.state = tsObjectValue
			continue
		case ',':
			switch t.state {
			case tsArrayComma:
				t.state = tsArrayValue
			case tsObjectComma:
				t.state = tsObjectKey
			default:
				return nil, t.unexpected(c)
			}
			t.pos++
			continue
		case '"':
			if t.state == tsObjectStart || t.state == tsObjectKey {
				tok, err := t.key()
				if err != nil {
					return nil, err
				}
				t.state = tsObjectColon
				return tok, nil
			}
		}
		if !t.valueAllowed() {
			return nil, t.unexpected(c)
		}
		v, err := t.scalar(c)
		if err != nil {
			return nil, err
		}
		t.valueEnd()
		return v, nil
	}
}

// memberTokens holds the member names of RFC 8460 reports as tokens, so
// that reading one allocates neither its string nor its interface value:
// they are a third of a report's tokens.
var memberTokens = func() map[string]json.Token {
	m := make(map[string]json.Token)
	for _, names := range knownMembers {
		for _, n := range names {
			m[n] = n
		}
	}
	return m
}()

// key reads an object member's name.
func (t *tokens) key() (json.Token, error) {
	if end := bytes.IndexByte(t.data[t.pos+1:], '"'); end >= 0 {
		if tok, ok := memberTokens[string(t.data[t.pos+1:t.pos+1+end])]; ok {
			t.pos += end + 2
			return tok, nil
		}
	}
	return t.str()
}

func (t *tokens) valueAllowed() bool {
	switch t.state {
	case tsTopValue, tsArrayStart, tsArrayValue, tsObjectValue:
		return true
	}
	return false
}

// valueEnd moves on from a value that was just read.
func (t *tokens) valueEnd() {
	switch t.state {
	case tsArrayStart, tsArrayValue:
		t.state = tsArrayComma
	case tsObjectValue:
		t.state = tsObjectComma
	}
}

// scalar reads the string, number or literal that starts with c. A value
// cut short by the end of the input is io.ErrUnexpectedEOF, as from the
// Decoder.
func (t *tokens) scalar(c byte) (json.Token, error) {
	switch c {
	case '"':
		return t.str()
	case 't':
		return true, t.literal("true")
	case 'f':
		return false, t.literal("false")
	case 'n':
		return nil, t.literal("null")
	}
	if c == '-' || '0' <= c && c <= '9' {
		return t.number()
	}
	return nil, t.invalid(t.pos, "looking for beginning of value")
}

func (t *tokens) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if t.pos+i >= len(t.data) {
			return io.ErrUnexpectedEOF
		}
		if t.data[t.pos+i] != lit[i] {
			return t.invalid(t.pos+i, "in literal "+lit)
		}
	}
	t.pos += len(lit)
	return nil
}

// number reads a number (RFC 8259 §6); it ends at the first byte that
// cannot continue it, whatever that byte is: the next token judges it.
func (t *tokens) number() (json.Token, error) {
	d, i := t.data, t.pos
	digits := func() error {
		if i >= len(d) {
			return io.ErrUnexpectedEOF
		}
		if d[i] < '0' || d[i] > '9' {
			return t.invalid(i, "in numeric literal")
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return nil
	}
	if d[i] == '-' {
		i++
	}
	// A leading 0 stands alone: "01" is the number 0 followed by 1.
	if i < len(d) && d[i] == '0' {
		i++
	} else if err := digits(); err != nil {
		return nil, err
	}
	if i < len(d) && d[i] == '.' {
		i++
		if err := digits(); err != nil {
			return nil, err
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if err := digits(); err != nil {
			return nil, err
		}
	}
	n := json.Number(d[t.pos:i])
	t.pos = i
	return n, nil
}

// str reads a string and unescapes it as encoding/json does: a lone or
// mismatched surrogate escape and each byte of invalid UTF-8 become
// U+FFFD. A string without either is converted directly.
func (t *tokens) str() (string, error) {
	d := t.data
	start := t.pos + 1
	i := start
	for i < len(d) {
		c := d[i]
		if c == '"' {
			t.pos = i + 1
			return string(d[start:i]), nil
		}
		if c == '\\' || c < ' ' {
			break
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(d[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return t.unescape(start, i)
}

// unescape finishes reading the string at start, from i on, through the
// scratch buffer.
func (t *tokens) unescape(start, i int) (string, error) {
	d := t.data
	b := append(t.buf[:0], d[start:i]...)
	defer func() { t.buf = b }()
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			t.pos = i + 1
			return string(b), nil
		case c < ' ':
			return "", t.invalid(i, "in string literal")
		case c == '\\':
			if i+1 >= len(d) {
				return "", io.ErrUnexpectedEOF
			}
			i += 2
			switch e := d[i-1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(d[i:])
				if r < 0 {
					return "", t.badHex(i)
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// The pair counts only if the next escape completes
					// it; otherwise that escape is read on its own.
					r2 := rune(-1)
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						r2 = hex4(d[i+2:])
					}
					r = utf16.DecodeRune(r, r2)
					if r != utf8.RuneError {
						i += 6
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", t.invalid(i-1, "in string escape code")
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	return "", io.ErrUnexpectedEOF
}

// hex4 returns the value of the four hex digits that start b, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		h := unhex(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// badHex is the error for a \u escape whose digits at i are not four hex
// digits: the first bad one, or the end of the input.
func (t *tokens) badHex(i int) error {
	for j := i; j < i+4 && j < len(t.data); j++ {
		if unhex(t.data[j]) < 0 {
			return t.invalid(j, "in \\u hexadecimal character escape")
		}
	}
	return io.ErrUnexpectedEOF
}

// unexpected is the error for a byte the state does not allow.
func (t *tokens) unexpected(c byte) error {
	context := "looking for beginning of value"
	switch t.state {
	case tsArrayComma:
		context = "after array element"
	case tsObjectStart, tsObjectKey:
		context = "looking for beginning of object key string"
	case tsObjectColon:
		context = "after object key"
	case tsObjectComma:
		context = "after object key:value pair"
	}
	return t.invalid(t.pos, context)
}

func (t *tokens) invalid(at int, context string) error {
	return fmt.Errorf("invalid character %q %s (offset %d)", t.data[at], context, at)
}
