package dashboard

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mailsts/mailsts/internal/atomicfile"
)

// Sessions across restarts: with SessionsPath set, the sessions are
// written to that file (mode 0600, atomically) at each sign-in and
// sign-out, and read back when the Auth starts, so that restarting or
// upgrading `mailsts serve` does not sign everyone out.
//
// The file holds no cookie: each session is kept under the SHA-256 of
// its cookie value, so a copy of the file lets no one in. A session is
// read back only while it has not expired (under the session_ttl of
// now, if that is shorter), its user is still configured,
// and that user's password and token hashes are the ones it signed in
// under (a changed password or token, or a removed user, ends the
// sessions). A damaged file is set aside (NAME.bad) with an error in
// the log, and everyone signs in again; a file that cannot be written
// leaves the sessions in memory, with an error in the log.

// SessionsFile is the sessions file's name in the state directory of
// `mailsts serve`.
const SessionsFile = "dashboard-sessions.json"

// sessionsFileVersion is the version of the file's format.
const sessionsFileVersion = 1

type sessionsFile struct {
	Version  int             `json:"version"`
	Sessions []storedSession `json:"sessions"`
}

type storedSession struct {
	Key     string    `json:"key"`
	User    string    `json:"user"`
	Creds   string    `json:"creds"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

// cookieKey is what the map and the file keep of a cookie value.
func cookieKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// credsOf fingerprints a user's credentials: a session is valid only
// while they are unchanged.
func credsOf(u *User) string {
	sum := sha256.Sum256([]byte(u.PasswordHash + "\x00" + u.TokenHash))
	return hex.EncodeToString(sum[:])
}

// sessionSaver orders the writes of the sessions file: a snapshot is
// written only if no later one was.
type sessionSaver struct {
	mu      sync.Mutex
	gen     uint64 // of the last snapshot taken (under Auth.mu)
	written uint64
}

type sessionsSnapshot struct {
	gen  uint64
	data []byte
}

func (a *Auth) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// snapshotLocked encodes the live sessions; a.mu is held. Nil without a
// sessions file.
func (a *Auth) snapshotLocked(now time.Time) *sessionsSnapshot {
	if a.SessionsPath == "" {
		return nil
	}
	f := sessionsFile{Version: sessionsFileVersion, Sessions: []storedSession{}}
	for _, s := range a.sessions {
		if now.Before(s.expires) {
			f.Sessions = append(f.Sessions, storedSession{Key: s.key, User: s.user.Name, Creds: credsOf(s.user), CSRF: s.csrf, Expires: s.expires.UTC()})
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil
	}
	a.saves.gen++
	return &sessionsSnapshot{gen: a.saves.gen, data: b}
}

// saveSessions writes snap unless a later snapshot was written already.
func (a *Auth) saveSessions(snap *sessionsSnapshot) {
	if snap == nil {
		return
	}
	a.saves.mu.Lock()
	defer a.saves.mu.Unlock()
	if snap.gen <= a.saves.written {
		return
	}
	err := os.MkdirAll(filepath.Dir(a.SessionsPath), 0o750)
	if err == nil {
		err = atomicfile.Write(a.SessionsPath, snap.data, 0o600)
	}
	if err != nil {
		a.log().Error("dashboard: sessions file not written; sign-ins will not survive a restart", "file", a.SessionsPath, "err", err)
		return
	}
	a.saves.written = snap.gen
}

// loadSessions reads the sessions file into a.sessions (init).
func (a *Auth) loadSessions() {
	if a.SessionsPath == "" {
		return
	}
	b, err := os.ReadFile(a.SessionsPath)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		a.log().Error("dashboard: sessions file not read; everyone signs in again", "file", a.SessionsPath, "err", err)
		return
	}
	var f sessionsFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != sessionsFileVersion {
		if err == nil {
			err = errors.New("unknown version")
		}
		a.log().Error("dashboard: sessions file damaged, set aside; everyone signs in again", "file", a.SessionsPath, "err", err)
		os.Rename(a.SessionsPath, a.SessionsPath+".bad")
		return
	}
	users := map[string]*User{}
	for i := range a.Users {
		users[a.Users[i].Name] = &a.Users[i]
	}
	now := a.now()
	for _, st := range f.Sessions {
		u := users[st.User]
		if u == nil || credsOf(u) != st.Creds || !now.Before(st.Expires) || len(st.Key) != 2*sha256.Size || len(a.sessions) >= maxSessions {
			continue
		}
		// A session_ttl shortened since applies to the sessions of before.
		a.sessions[st.Key] = &session{key: st.Key, user: u, csrf: st.CSRF, expires: minTime(st.Expires, now.Add(a.ttl()))}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
