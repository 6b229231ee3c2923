package dashboard

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// restartAuth is a new Auth on the same sessions file, as after a
// restart of `mailsts serve`, with users as configured then.
func restartAuth(path string, now *time.Time, log *bytes.Buffer, users ...User) *Auth {
	return &Auth{Users: users, SessionsPath: path, Now: func() time.Time { return *now }, SessionTTL: time.Hour,
		Logger: slog.New(slog.NewTextHandler(log, nil))}
}

func withCookie(id string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
	return r
}

// Sessions survive a restart through the file, and only while they
// are valid: not signed out, not expired, the user still configured
// with the credentials it signed in with.
func TestSessionsSurviveRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dashboard-sessions.json")
	now := testNow
	var log bytes.Buffer
	alice := User{Name: "alice", PasswordHash: "$2a$04$aliceAliceAliceAliceAu0xS5Yb3cQ0lq1E1Lx3a9m9hUQvRj3CK"}
	bob := User{Name: "bob", TokenHash: HashToken(bobToken), Domains: []string{"d1.example"}}
	a := restartAuth(path, &now, &log, alice, bob)
	sa := a.newSession(&a.Users[0])
	sb := a.newSession(&a.Users[1])
	gone := a.newSession(&a.Users[1])
	a.endSession(gone)

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("sessions file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, id := range []string{sa.id, sb.id, gone.id} {
		if bytes.Contains(b, []byte(id)) {
			t.Errorf("the sessions file holds a cookie value: %s", b)
		}
	}

	a2 := restartAuth(path, &now, &log, alice, bob)
	got := a2.sessionOf(withCookie(sa.id))
	if got == nil || got.user.Name != "alice" || got.csrf != sa.csrf || !got.expires.Equal(sa.expires) {
		t.Fatalf("alice's session after a restart: %+v", got)
	}
	if got := a2.sessionOf(withCookie(sb.id)); got == nil || got.user.Name != "bob" || len(got.user.Domains) != 1 {
		t.Fatalf("bob's session after a restart: %+v", got)
	}
	if a2.sessionOf(withCookie(gone.id)) != nil {
		t.Error("a signed-out session is back after a restart")
	}
	// Signing out after the restart lasts too.
	a2.endSession(a2.sessionOf(withCookie(sb.id)))
	if restartAuth(path, &now, &log, alice, bob).sessionOf(withCookie(sb.id)) != nil {
		t.Error("bob signed out, yet his session is back after the next restart")
	}

	// A changed password, a removed user, the passing of time.
	changed := alice
	changed.PasswordHash = "$2a$04$otherOtherOtherOtherOu0xS5Yb3cQ0lq1E1Lx3a9m9hUQvRj3CK"
	if restartAuth(path, &now, &log, changed, bob).sessionOf(withCookie(sa.id)) != nil {
		t.Error("alice's session survives a change of her password")
	}
	if restartAuth(path, &now, &log, bob).sessionOf(withCookie(sa.id)) != nil {
		t.Error("alice's session survives her removal")
	}
	later := now.Add(time.Hour)
	if restartAuth(path, &later, &log, alice, bob).sessionOf(withCookie(sa.id)) != nil {
		t.Error("an expired session is back after a restart")
	}
	// A session_ttl shortened before the restart applies to it.
	short := restartAuth(path, &now, &log, alice, bob)
	short.SessionTTL = 10 * time.Minute
	if got := short.sessionOf(withCookie(sa.id)); got == nil || !got.expires.Equal(now.Add(10*time.Minute)) {
		t.Errorf("after session_ttl went from 1h to 10m: %+v", got)
	}
	if log.Len() != 0 {
		t.Errorf("log: %s", log.String())
	}
}

// A damaged file is set aside and logged; a file that cannot be written
// is logged and leaves sign-in working for the running process; a
// missing directory is created.
func TestSessionsFileFaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := testNow
	alice := User{Name: "alice", TokenHash: HashToken(bobToken)}

	path := filepath.Join(dir, "sessions.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	a := restartAuth(path, &now, &log, alice)
	s := a.newSession(&a.Users[0])
	if !strings.Contains(log.String(), "sessions file damaged, set aside") {
		t.Errorf("log: %s", log.String())
	}
	if b, err := os.ReadFile(path + ".bad"); err != nil || string(b) != "{not json" {
		t.Errorf("damaged file not set aside: %q, %v", b, err)
	}
	if restartAuth(path, &now, &log, alice).sessionOf(withCookie(s.id)) == nil {
		t.Error("after the damaged file, new sessions are not kept")
	}

	var log2 bytes.Buffer
	// A regular file where the directory should be: nothing can be
	// written there.
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a = restartAuth(filepath.Join(dir, "file", "sessions.json"), &now, &log2, alice)
	s = a.newSession(&a.Users[0])
	if a.sessionOf(withCookie(s.id)) == nil {
		t.Error("sign-in fails when the sessions file cannot be written")
	}
	if !strings.Contains(log2.String(), "level=ERROR") || !strings.Contains(log2.String(), "sign-ins will not survive a restart") {
		t.Errorf("log: %s", log2.String())
	}

	var log3 bytes.Buffer
	nested := filepath.Join(dir, "state", "mailsts", "sessions.json")
	a = restartAuth(nested, &now, &log3, alice)
	s = a.newSession(&a.Users[0])
	if restartAuth(nested, &now, &log3, alice).sessionOf(withCookie(s.id)) == nil || log3.Len() != 0 {
		t.Errorf("sessions under a directory not yet made: log %s", log3.String())
	}
}
