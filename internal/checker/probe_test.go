package checker

import (
	"bufio"
	"strings"
	"testing"
)

var replyLineCases = []struct {
	line string
	code int
	more bool
	text string
	ok   bool
}{
	{"220 mx.example ESMTP", 220, false, "mx.example ESMTP", true},
	{"250-mx.example greets you", 250, true, "mx.example greets you", true},
	{"250 STARTTLS", 250, false, "STARTTLS", true},
	{"250", 250, false, "", true},
	{"554 5.7.1 no", 554, false, "5.7.1 no", true},
	{"25", 0, false, "", false},
	{"abc hello", 0, false, "", false},
	{"999 too high", 0, false, "", false},
	{"199 too low", 0, false, "", false},
	{"250x", 0, false, "", false},
	{"", 0, false, "", false},
}

// RFC 5321 §4.2: reply lines are a code, "-" or " ", and text.
func TestParseReplyLine(t *testing.T) {
	t.Parallel()
	for _, c := range replyLineCases {
		code, more, text, err := parseReplyLine(c.line)
		if (err == nil) != c.ok || code != c.code || more != c.more || text != c.text {
			t.Errorf("%q: %d %v %q %v", c.line, code, more, text, err)
		}
	}
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	good := "250-mx greets\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
	code, lines, err := readReply(bufio.NewReaderSize(strings.NewReader(good), maxReplyLine))
	if err != nil || code != 250 || len(lines) != 3 || lines[2] != "STARTTLS" {
		t.Errorf("got %d %q %v", code, lines, err)
	}
	for name, in := range map[string]string{
		"mixed codes": "250-a\r\n220 b\r\n",
		"truncated":   "250-a\r\n",
		"long line":   "250 " + strings.Repeat("a", 3*maxReplyLine) + "\r\n",
		"many lines":  strings.Repeat("250-a\r\n", maxReplyLines+1) + "250 b\r\n",
		"garbage":     "HTTP/1.1 400 Bad Request\r\n",
	} {
		if _, _, err := readReply(bufio.NewReaderSize(strings.NewReader(in), maxReplyLine)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseReplyLine: never panics, and every accepted line formats back
// to an equivalent line (round trip).
func FuzzParseReplyLine(f *testing.F) {
	for _, c := range replyLineCases {
		f.Add(c.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return
		}
		c2, m2, t2, err := parseReplyLine(formatReplyLine(code, more, text))
		if err != nil || c2 != code || m2 != more || t2 != text {
			t.Fatalf("%q: round trip gave %d %v %q %v", line, c2, m2, t2, err)
		}
	})
}

// FuzzReadReply: hostile servers cannot make the reader panic or return
// more than the caps allow.
func FuzzReadReply(f *testing.F) {
	f.Add("250-a\r\n250 b\r\n")
	f.Add("220 hi\n")
	f.Add("250-" + strings.Repeat("x", 100) + "\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		_, lines, err := readReply(bufio.NewReaderSize(strings.NewReader(in), maxReplyLine))
		if err == nil && (len(lines) == 0 || len(lines) > maxReplyLines) {
			t.Fatalf("%d lines", len(lines))
		}
	})
}
