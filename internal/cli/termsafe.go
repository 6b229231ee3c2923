package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal. Env.IsTerminal, when set,
// decides instead (tests).
func (e Env) isTerminal(w io.Writer) bool {
	if e.IsTerminal != nil {
		return e.IsTerminal(w)
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bidiControl reports whether r reorders text on display: the embeddings
// and overrides U+202A–U+202E, the isolates U+2066–U+2069, the marks
// U+200E, U+200F and U+061C. Report content carrying them can make a
// terminal show another domain or number than the one stored ("Trojan
// Source", CVE-2021-42574).
func bidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}

// termSafe makes untrusted text (report content, rejected input, DNS and
// HTTP answers) safe to print as text (RFC 8460 §7: report content is
// untrusted): control characters (C0, DEL, C1), the line and paragraph
// separators and bidirectional controls become visible escapes (\x1b,
// \u202e), and bytes that are not UTF-8 become \xNN. Text without any of
// them is returned as is.
func termSafe(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unsafeRune: see termSafe. utf8.RuneError stands for invalid bytes too
// (decoded one by one in termSafe).
func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 || bidiControl(r) || r == utf8.RuneError
}
