package cli

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue #10 item 7: postfix-mta-sts-resolver's Redis address is translated
// and printed by --check-config; an address go-redis cannot dial is an
// error there, not a daemon that answers TEMP to every query.
func TestPolicydCheckConfigRedis(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "mta-sts-daemon.yml")
	os.WriteFile(f, []byte("host: 127.0.0.1\nport: 8461\ncache:\n  type: redis\n  options:\n    address: \"redis://127.0.0.1/0?timeout=5\"\n"), 0o600)
	code, out, errs := runCLI(t, "policyd", "--config", f, "--check-config", "--state-dir", dir)
	if code != ExitOK || !strings.Contains(out, "url: redis://127.0.0.1?db=0&dial_timeout=5s") {
		t.Errorf("check-config: %d\n%s\n%s", code, out, errs)
	}
	for _, bad := range []string{
		"cache:\n  type: redis\n  redis:\n    address: \"redis://127.0.0.1/0?timeout=5\"\n",
		"cache:\n  type: redis\n  options:\n    url: \"rediss://127.0.0.1/0?ssl_certfile=/c.pem\"\n",
	} {
		os.WriteFile(f, []byte(bad), 0o600)
		if code, out, errs := runCLI(t, "policyd", "--config", f, "--check-config", "--state-dir", dir); code != ExitError {
			t.Errorf("%s: %d, want %d\n%s\n%s", bad, code, ExitError, out, errs)
		}
	}
}

// mailsts cache import --from-resolver FILE copies the old daemon's
// policies into the cache and leaves its file alone; unreadable rows are
// counted (exit 1).
func TestCacheImportFromResolver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	peer := filepath.Join(dir, "cache.db")
	db, err := sql.Open("sqlite", peer)
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	for _, q := range []string{
		"create table if not exists proactive_fetch_ts (id integer primary key, last_fetch_ts integer)",
		"create table if not exists sts_policy_cache (domain text, ts integer, pol_id text, pol_body text)",
		"create unique index if not exists sts_policy_domain on sts_policy_cache (domain)",
		`insert into sts_policy_cache values ('enforce.example', ` + ts + `, 'enforce20240101', '{"mx": ["*.enforce.example"], "version": "STSv1", "mode": "enforce", "max_age": 86400}')`,
		`insert into sts_policy_cache values ('bad.example', ` + ts + `, 'b', '{"mx": ["*.bad.example"], "version": "STSv2", "mode": "enforce", "max_age": 86400}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	state := filepath.Join(dir, "state")
	code, out, errs := runCLI(t, "cache", "import", "--state-dir", state, "--from-resolver", peer)
	if code != ExitFailure || !strings.Contains(out, "2 records: 1 imported, 0 kept (already cached as recently), 0 expired, 1 unreadable") {
		t.Fatalf("import: %d %q %q", code, out, errs)
	}
	code, out, _ = runCLI(t, "cache", "show", "--state-dir", state, "enforce.example")
	if code != ExitOK || !strings.Contains(out, "enforce20240101") || !strings.Contains(out, "mode:            enforce") {
		t.Errorf("show after import: %d\n%s", code, out)
	}
	// The old file as the cache itself: refused, never migrated.
	code, _, errs = runCLI(t, "cache", "import", "--state-dir", state, "--from-resolver", filepath.Join(state, "policyd-cache.sqlite"))
	if code != ExitError {
		t.Errorf("import from the cache itself: %d %q", code, errs)
	}
	if code, _, _ := runCLI(t, "cache", "import", "--state-dir", state); code != ExitUsage {
		t.Errorf("import without --from-resolver: %d, want usage", code)
	}
}
