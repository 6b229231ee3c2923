package mailbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
	"github.com/mailsts/mailsts/internal/reports/reportstest"
	"github.com/mailsts/mailsts/internal/reports/sqlstore/sqlstoretest"
)

// TestMaildirCrashBeforeMove: issue #11.6. A kill -9 between storing a
// rejected message and moving it stored the rejection twice at the next
// pass. The rejection is now keyed by the file's unique name and hash.
func TestMaildirCrashBeforeMove(t *testing.T) { // RPT-RECV-4
	t.Parallel()
	sqlstoretest.Backends(t, func(t *testing.T, st reports.Store) {
		ctx := context.Background()
		dir := t.TempDir()
		for _, sub := range []string{"new", "cur", "tmp"} {
			os.MkdirAll(filepath.Join(dir, sub), 0o700)
		}
		files := map[string][]byte{
			"new/1.junk":        []byte("Subject: hi\r\n\r\nhello\r\n"),
			"new/2.f9":          reportstest.ReadFile(t, "../../../tlsrpt/testdata/f9-with-f10c.eml"),
			"cur/3.junk2:2,S":   []byte("Subject: other\r\n\r\n{\"policies\": [\r\n"),
			"new/4.also-junk-1": []byte("Subject: hi\r\n\r\nhello\r\n"), // same bytes, another message
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Each file's first move fails: the process "died" after storing
		// the message and before moving it.
		crash := errors.New("killed")
		moved := map[string]bool{}
		md := &Maildir{Dir: dir, Ingester: newIngester(st, ingest.DKIMOff, nil), rename: func(from, to string) error {
			if !moved[from] {
				moved[from] = true
				return crash
			}
			return os.Rename(from, to)
		}}
		crashes := 0
		for range 2*len(files) + 1 {
			_, err := md.Run(ctx)
			if err == nil {
				break
			}
			if !errors.Is(err, crash) {
				t.Fatal(err)
			}
			crashes++
		}
		if crashes != len(files) {
			t.Fatalf("%d crashes, want one per file", crashes)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, "new")); len(ents) != 0 {
			t.Errorf("%d files left in new/", len(ents))
		}
		rej, err := st.ListRejected(ctx, reports.Filter{})
		if err != nil || len(rej) != 3 {
			t.Errorf("rejected rows: %d (%v), want 3: one per junk message, none twice", len(rej), err)
		}
		rows, _ := st.Summary(ctx, reports.Filter{})
		if len(rows) != 1 || rows[0].Reports != 1 {
			t.Errorf("summary %+v", rows)
		}
	})
}
