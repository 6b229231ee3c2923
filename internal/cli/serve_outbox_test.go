package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/dashboard"
	"github.com/mailsts/mailsts/internal/outgoing/outbox"
)

// TestServeDashboardOutbox: with delivery.db, the dashboard lists the
// outbox's reports at /outbox; without a delivery section there is no
// such page, and serve does not create the outbox file.
func TestServeDashboardOutbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), outbox.DefaultFile)
	st, err := outbox.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	o := &outbox.Outbox{Store: st, Config: outbox.Config{DisableSpread: true}}
	day := time.Now().UTC().AddDate(0, 0, 3) // not due: stays pending
	if err := o.Enqueue(ctx, outbox.Report{PolicyDomain: "outbound.example", Day: day, ReportID: "rid-1", Filename: "f.json.gz", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	hash, err := dashboard.HashPassword("a long password", 4)
	if err != nil {
		t.Fatal(err)
	}
	users := "dashboard:\n  users:\n    - name: alice\n      password_hash: \"" + hash + "\"\n"
	get := func(apiURL string) (int, string) {
		c := signIn(t, apiURL, "alice", "a long password")
		resp, err := c.Get(apiURL + "/outbox")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	_, apiURL := startServe(t, "--config", configFile(t, users+"delivery:\n  db: sqlite:"+db+"\n"), "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0")
	code, page := get(apiURL)
	if code != http.StatusOK || !strings.Contains(page, "<td>outbound.example</td>") || !strings.Contains(page, `data-state="pending"`) {
		t.Errorf("/outbox with delivery.db: %d\n%s", code, page)
	}

	missing := filepath.Join(t.TempDir(), "none.db")
	_, apiURL = startServe(t, "--config", configFile(t, users+"delivery:\n  db: sqlite:"+missing+"\n"), "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0")
	if code, page := get(apiURL); code != http.StatusNotFound || strings.Contains(page, `href="/outbox"`) {
		t.Errorf("/outbox with a missing outbox file: %d", code)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("serve created the outbox file it only reads")
	}
}
