package alerts

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"time"
)

// Webhook POSTs each event as JSON (the Event's fields) to URL; any 2xx
// answer is a delivery.
type Webhook struct {
	URL string
	// Client defaults to one with a 10 s timeout that follows no
	// redirects.
	Client *http.Client
	// Header is added to every request (for example Authorization).
	Header http.Header
}

func (w *Webhook) Name() string { return "webhook" }

func (w *Webhook) Notify(ctx context.Context, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alerts: webhook: %w", err)
	}
	for k, v := range w.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mailsts-alerts")
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("alerts: webhook: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("alerts: webhook: %s answered %s", w.URL, resp.Status)
	}
	return nil
}

// Mail sends each event as a plain-text message through an SMTP relay
// (STARTTLS when the relay offers it; no authentication: a local MTA).
type Mail struct {
	// Relay is host:port, for example 127.0.0.1:25.
	Relay string
	From  string
	To    []string
	// Now dates the message; nil means time.Now.
	Now func() time.Time
}

func (m *Mail) Name() string { return "mail" }

// headerText keeps a header value on one line and short: alert text
// comes from reports, which anyone can send.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Message builds the mail of an event.
func (m *Mail) Message(ev Event) []byte {
	var subj string
	var body strings.Builder
	line := func(a Alert) string {
		return fmt.Sprintf("[%s] %s: %s (since %s)", a.Rule, a.Domain, a.Subject, a.Since.UTC().Format("2006-01-02 15:04 UTC"))
	}
	switch ev.Type {
	case EventDigest:
		subj = fmt.Sprintf("mailsts: %d open alerts", len(ev.Open))
		fmt.Fprintf(&body, "Open alerts on %s:\n\n", ev.At.UTC().Format(time.DateOnly))
		for _, a := range ev.Open {
			body.WriteString(line(a) + "\n")
		}
		if len(ev.Open) == 0 {
			body.WriteString("None.\n")
		}
	default:
		a := ev.Alert
		subj = fmt.Sprintf("mailsts %s: %s %s", ev.Type, a.Domain, a.Rule)
		body.WriteString(line(*a) + "\n")
		if a.ResolvedAt != nil {
			fmt.Fprintf(&body, "Resolved at %s.\n", a.ResolvedAt.UTC().Format("2006-01-02 15:04 UTC"))
		}
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nAuto-Submitted: auto-generated\r\n\r\n",
		headerText(m.From), headerText(strings.Join(m.To, ", ")), headerText(subj), now().Format(time.RFC1123Z))
	// Body lines in CRLF; a lone "." line is escaped by the SMTP client.
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(body.String(), "\r", ""), "\n", "\r\n"))
	return b.Bytes()
}

func (m *Mail) Notify(ctx context.Context, ev Event) error {
	if len(m.To) == 0 {
		return fmt.Errorf("alerts: mail: no recipient")
	}
	if err := sendMail(ctx, m.Relay, m.From, m.To, m.Message(ev)); err != nil {
		return fmt.Errorf("alerts: mail via %s: %w", m.Relay, err)
	}
	return nil
}

// sendMail is smtp.SendMail with a deadline, and STARTTLS only to a relay
// that is not on loopback (a local MTA's certificate rarely names
// 127.0.0.1).
func sendMail(ctx context.Context, addr, from string, to []string, msg []byte) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
				return err
			}
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
