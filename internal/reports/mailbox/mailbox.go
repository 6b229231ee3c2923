package mailbox

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
)

// Stats counts what one mailbox pass did.
type Stats struct {
	Stored, Duplicate, Rejected, Deferred int
}

func (s Stats) String() string {
	return fmt.Sprintf("%d stored, %d duplicate, %d rejected, %d deferred", s.Stored, s.Duplicate, s.Rejected, s.Deferred)
}

func (s *Stats) add(o ingest.Outcome) {
	switch o {
	case ingest.OutcomeStored:
		s.Stored++
	case ingest.OutcomeDuplicate:
		s.Duplicate++
	default:
		s.Rejected++
	}
}

// maxPerPass bounds the messages one Maildir or IMAP pass handles; the
// next pass takes the rest.
const maxPerPass = 10000

// Maildir ingests the report mails of a Maildir: every file in new/ and
// cur/ is ingested as one message and moved to the Processed (stored or
// duplicate) or Rejected Maildir++ subfolder (".Processed/cur/" under
// Dir). A message whose DKIM key lookup failed temporarily stays where it
// is for the next pass.
type Maildir struct {
	Dir string
	// Processed and Rejected are subfolder names; empty means
	// ".Processed" and ".Rejected".
	Processed, Rejected string
	Ingester            *ingest.Ingester
	Logger              *slog.Logger

	// rename is os.Rename; tests make it fail to simulate a crash
	// between storing a message and moving it.
	rename func(oldpath, newpath string) error
}

// Run makes one pass. It stops at the first storage error (nothing of
// that message was stored; it stays in place).
func (m *Maildir) Run(ctx context.Context) (Stats, error) {
	var st Stats
	if m.rename == nil {
		m.rename = os.Rename
	}
	processed := cmp.Or(m.Processed, ".Processed")
	rejected := cmp.Or(m.Rejected, ".Rejected")
	// A Maildir that does not exist is not created (a typo would
	// otherwise grow folders); the error wraps fs.ErrNotExist.
	if _, err := os.Stat(filepath.Join(m.Dir, "new")); err != nil {
		return st, fmt.Errorf("reports: maildir: %w", err)
	}
	for _, f := range []string{processed, rejected} {
		if strings.Contains(f, "/") || f == "." || f == ".." {
			return st, fmt.Errorf("reports: maildir folder %q must be a plain name", f)
		}
		for _, sub := range []string{"tmp", "new", "cur"} {
			if err := os.MkdirAll(filepath.Join(m.Dir, f, sub), 0o700); err != nil {
				return st, fmt.Errorf("reports: maildir: %w", err)
			}
		}
	}
	var files []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(m.Dir, sub))
		if err != nil {
			return st, fmt.Errorf("reports: maildir: %w", err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				files = append(files, filepath.Join(m.Dir, sub, e.Name()))
			}
		}
	}
	if len(files) > maxPerPass {
		files = files[:maxPerPass]
	}
	log := m.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		res, err := m.one(ctx, path)
		if errors.Is(err, ingest.ErrTemporary) {
			log.Warn("reports: maildir message deferred", "file", path, "error", err)
			st.Deferred++
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // taken by a concurrent pass
		}
		if err != nil {
			return st, err
		}
		st.add(res.Outcome)
		dest := processed
		if res.Outcome == ingest.OutcomeRejected {
			dest = rejected
		}
		// Maildir: a message moved into cur/ gets the ":2," info suffix.
		name := filepath.Base(path)
		if !strings.Contains(name, ":2,") {
			name += ":2,S"
		}
		if err := m.rename(path, filepath.Join(m.Dir, dest, "cur", name)); err != nil {
			return st, fmt.Errorf("reports: maildir: %w", err)
		}
	}
	return st, nil
}

// one ingests one Maildir file. The rejection key is the file's unique
// name (without the ":2," info) and a hash of its content: when a crash
// comes between storing and moving the file, the next pass finds it again
// and stores neither its reports (duplicates) nor its rejections twice.
func (m *Maildir) one(ctx context.Context, path string) (ingest.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return ingest.Result{}, err
	}
	defer f.Close()
	// At most the cap plus one byte: MessageOnce rejects larger input.
	raw, err := io.ReadAll(io.LimitReader(f, m.Ingester.MaxInput()+1))
	if err != nil {
		return ingest.Result{}, fmt.Errorf("%w: %w", ingest.ErrRead, err)
	}
	uniq, _, _ := strings.Cut(filepath.Base(path), ":")
	sum := sha256.Sum256(raw)
	key := "maildir:" + uniq + ":" + hex.EncodeToString(sum[:8])
	return m.Ingester.MessageOnce(ctx, bytes.NewReader(raw), reports.SourceMaildir, path, key)
}

// IMAP security modes.
const (
	IMAPTLS      = "tls"      // implicit TLS (imaps://, port 993)
	IMAPStartTLS = "starttls" // STARTTLS required (imap://, port 143)
	// IMAPPlainInsecure sends the password in clear: only for tests on
	// loopback and for a local server behind a trusted socket.
	IMAPPlainInsecure = "plain-insecure"
)

// IMAP polls an IMAP mailbox for report mails: each message is fetched
// (at most the size cap plus one byte: a larger message is rejected with
// its first bytes kept), ingested and moved to the Processed or Rejected
// folder, created when missing. A message deferred by a temporary DKIM
// failure stays for the next poll.
type IMAP struct {
	// Addr is host:port.
	Addr string
	// Security is IMAPTLS (default), IMAPStartTLS or IMAPPlainInsecure.
	Security           string
	TLSConfig          *tls.Config
	Username, Password string
	// Mailbox defaults to INBOX; Processed and Rejected to "Processed"
	// and "Rejected".
	Mailbox, Processed, Rejected string
	Ingester                     *ingest.Ingester
	// Timeout bounds dialing; 0 means 1 minute. Cancelling the context
	// of Poll closes the connection.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Poll connects, processes the messages in the mailbox and logs out.
func (c *IMAP) Poll(ctx context.Context) (Stats, error) {
	var st Stats
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	opts := &imapclient.Options{TLSConfig: c.TLSConfig, Dialer: &net.Dialer{Timeout: timeout}}
	var cl *imapclient.Client
	var err error
	switch c.Security {
	case "", IMAPTLS:
		cl, err = imapclient.DialTLS(c.Addr, opts)
	case IMAPStartTLS:
		cl, err = imapclient.DialStartTLS(c.Addr, opts)
	case IMAPPlainInsecure:
		cl, err = imapclient.DialInsecure(c.Addr, opts)
	default:
		return st, fmt.Errorf("reports: imap: unknown security mode %q", c.Security)
	}
	if err != nil {
		return st, fmt.Errorf("%w: imap %s: %w", ingest.ErrTemporary, c.Addr, err)
	}
	defer cl.Close()
	// The client's commands block on the connection; closing it when ctx
	// ends unblocks them.
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	if err := cl.Login(c.Username, c.Password).Wait(); err != nil {
		return st, fmt.Errorf("reports: imap %s: login as %q: %w", c.Addr, c.Username, err)
	}
	mailbox := cmp.Or(c.Mailbox, "INBOX")
	processed := cmp.Or(c.Processed, "Processed")
	rejected := cmp.Or(c.Rejected, "Rejected")
	existing, err := cl.List("", "*", nil).Collect()
	if err != nil {
		return st, fmt.Errorf("%w: imap list: %w", ingest.ErrTemporary, err)
	}
	for _, f := range []string{processed, rejected} {
		if !slices.ContainsFunc(existing, func(l *imap.ListData) bool { return l.Mailbox == f }) {
			if err := cl.Create(f, nil).Wait(); err != nil {
				return st, fmt.Errorf("reports: imap create %q: %w", f, err)
			}
		}
	}
	sel, err := cl.Select(mailbox, nil).Wait()
	if err != nil {
		return st, fmt.Errorf("reports: imap select %q: %w", mailbox, err)
	}
	sd, err := cl.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return st, fmt.Errorf("%w: imap search: %w", ingest.ErrTemporary, err)
	}
	uids := sd.AllUIDs()
	if len(uids) > maxPerPass {
		uids = uids[:maxPerPass]
	}
	section := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: c.Ingester.MaxInput() + 1}}
	for _, uid := range uids {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		msgs, err := cl.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			return st, fmt.Errorf("%w: imap fetch %d: %w", ingest.ErrTemporary, uid, err)
		}
		if len(msgs) != 1 {
			continue // expunged meanwhile
		}
		raw := msgs[0].FindBodySection(section)
		origin := fmt.Sprintf("%s/%s uid %d", c.Addr, mailbox, uid)
		// The key makes a rejection stored before a failed move a no-op
		// at the next poll (reports are duplicates anyway).
		key := fmt.Sprintf("imap:%s/%s:%d:%d", c.Addr, mailbox, sel.UIDValidity, uid)
		res, err := c.Ingester.MessageOnce(ctx, bytes.NewReader(raw), reports.SourceIMAP, origin, key)
		if errors.Is(err, ingest.ErrTemporary) {
			log.Warn("reports: imap message deferred", "uid", uid, "error", err)
			st.Deferred++
			continue
		}
		if err != nil {
			return st, err
		}
		st.add(res.Outcome)
		dest := processed
		if res.Outcome == ingest.OutcomeRejected {
			dest = rejected
		}
		if _, err := cl.Move(imap.UIDSetNum(uid), dest).Wait(); err != nil {
			// Stored already; the next poll finds it again as a
			// duplicate or an already kept rejection, so nothing is
			// lost or doubled.
			return st, fmt.Errorf("reports: imap move %d to %q: %w", uid, dest, err)
		}
	}
	if err := cl.Logout().Wait(); err != nil {
		log.Debug("reports: imap logout", "error", err)
	}
	return st, nil
}
