package mailbox

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
)

func TestMaildir(t *testing.T) { // RPT-MAIL-7, RPT-RECV-4
	t.Parallel()
	ctx := context.Background()
	signed, fake := reportstest.SignF9(t)
	unsigned := reportstest.ReadFile(t, "../../../tlsrpt/testdata/f9-with-f10c.eml")
	dir := t.TempDir()
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
	}
	files := map[string][]byte{"new/1.signed": signed, "new/2.copy": signed, "cur/3.unsigned:2,S": unsigned, "new/4.junk": []byte("Subject: hi\r\n\r\nhello\r\n")}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st := sqlstoretest.OpenSQLite(t)
	md := &Maildir{Dir: dir, Ingester: newIngester(st, ingest.DKIMRequire, fake)}
	stats, err := md.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats != (Stats{Stored: 1, Duplicate: 1, Rejected: 2}) {
		t.Errorf("stats %s", stats)
	}
	list := func(p string) []string {
		ents, _ := os.ReadDir(filepath.Join(dir, p))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	if n := list("new"); len(n) != 0 {
		t.Errorf("left in new: %v", n)
	}
	if p := list(".Processed/cur"); len(p) != 2 {
		t.Errorf("processed: %v", p)
	}
	if r := list(".Rejected/cur"); len(r) != 2 {
		t.Errorf("rejected: %v", r)
	}
	// A second pass has nothing to do.
	if stats, err := md.Run(ctx); err != nil || stats != (Stats{}) {
		t.Errorf("second pass %s %v", stats, err)
	}
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return int64(l.Len()) }

// startIMAP runs an in-memory IMAP server on loopback with user u/p.
func startIMAP(t *testing.T, msgs ...[]byte) (string, *imapmemserver.User) {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("u", "p")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := user.Append("INBOX", literal{bytes.NewReader(m)}, &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       nopLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), user
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func mailboxCount(t *testing.T, addr, mailbox string) uint32 {
	t.Helper()
	cl, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Login("u", "p").Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := cl.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return *sd.NumMessages
}

func TestIMAPPoll(t *testing.T) { // RPT-MAIL-7, RPT-RECV-4
	t.Parallel()
	ctx := context.Background()
	signed, fake := reportstest.SignF9(t)
	unsigned := reportstest.ReadFile(t, "../../../tlsrpt/testdata/f9-with-f10c.eml")
	addr, _ := startIMAP(t, signed, unsigned, signed)
	st := sqlstoretest.OpenSQLite(t)
	c := &IMAP{Addr: addr, Security: IMAPPlainInsecure, Username: "u", Password: "p", Ingester: newIngester(st, ingest.DKIMRequire, fake)}
	stats, err := c.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats != (Stats{Stored: 1, Duplicate: 1, Rejected: 1}) {
		t.Errorf("stats %s", stats)
	}
	if n := mailboxCount(t, addr, "INBOX"); n != 0 {
		t.Errorf("INBOX still has %d", n)
	}
	if n := mailboxCount(t, addr, "Processed"); n != 2 {
		t.Errorf("Processed has %d", n)
	}
	if n := mailboxCount(t, addr, "Rejected"); n != 1 {
		t.Errorf("Rejected has %d", n)
	}
	rej, _ := st.ListRejected(ctx, reports.Filter{})
	if len(rej) != 1 || rej[0].Reason != reports.ReasonDKIM || rej[0].Source != reports.SourceIMAP {
		t.Errorf("rejected %+v", rej)
	}
	// Wrong password: an error, nothing stored.
	bad := *c
	bad.Password = "x"
	if _, err := bad.Poll(ctx); err == nil {
		t.Error("bad login succeeded")
	}
	// TLS against a plain server fails rather than falling back.
	tlsc := *c
	tlsc.Security = IMAPTLS
	if _, err := tlsc.Poll(ctx); err == nil {
		t.Error("TLS to a plain server succeeded")
	}
}
