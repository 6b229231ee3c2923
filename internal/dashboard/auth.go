package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/httpapi"
)

// User is a person or script allowed to read the dashboard and the API.
type User struct {
	Name string
	// PasswordHash is a bcrypt hash (HashPassword); empty: no password
	// sign-in.
	PasswordHash string
	// TokenHash is "sha256:" and the hex SHA-256 of the user's token
	// (HashToken); empty: no token. A token works as an API bearer token
	// and in the sign-in form.
	TokenHash string
	// Domains limits the user to these policy domains; empty: all, and
	// rejected input too.
	Domains []string
}

// Defaults of Auth.
const (
	DefaultSessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept in memory.
	maxSessions = 10000
	// Sign-in attempts per client address: 10 at once, then 5 a minute.
	loginBurst  = 10
	loginPerMin = 5
	// PasswordCost is the bcrypt cost of HashPassword (about 0.2 s on
	// one core of a small server): slow for a guesser, bearable at
	// sign-in.
	PasswordCost = 12
	// MinTokenLength is the shortest token accepted (hex of 16 bytes).
	MinTokenLength = 32
	// maxCredential bounds what a form or header may carry.
	maxCredential = 1024

	sessionCookie = "mailsts_session"
	loginCookie   = "mailsts_login"
)

// Auth checks credentials and keeps sessions. Safe for concurrent use.
type Auth struct {
	Users []User
	// APIToken is the API bearer token of `mailsts serve
	// --api-token-file`: read access to everything, for scripts. Empty:
	// none.
	APIToken string
	// SessionTTL is how long a sign-in lasts (default DefaultSessionTTL).
	SessionTTL time.Duration
	// SecureCookie sets Secure on the cookies even when the request came
	// over plain HTTP (a TLS proxy in front); it is set anyway when the
	// request came over TLS.
	SecureCookie bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LoginLimiter bounds sign-in attempts per client address; nil means
	// loginBurst at once, then loginPerMin a minute.
	LoginLimiter *httpapi.RateLimiter
	// SessionsPath, when set, is the file that keeps the sessions across
	// restarts (sessions.go); empty: in memory only.
	SessionsPath string
	// Logger receives the sessions file's errors; nil discards them.
	Logger *slog.Logger

	once     sync.Once
	mu       sync.Mutex
	sessions map[string]*session // by key (cookieKey of the cookie)
	saves    sessionSaver
	// dummy is a bcrypt hash compared when the user is unknown, so that
	// an unknown name costs as long as a wrong password.
	dummy []byte
}

type session struct {
	id      string // the cookie's value; "" for a session loaded from the file
	key     string // cookieKey(id): what the map and the file hold
	user    *User
	csrf    string
	expires time.Time
}

type ctxKey int

const (
	userKey ctxKey = iota
	sessionKey
)

// UserFrom returns the signed-in user of a request's context, nil when
// none.
func UserFrom(ctx context.Context) *User {
	u, _ := ctx.Value(userKey).(*User)
	return u
}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey).(*session)
	return s
}

// StoreFor returns st as the signed-in user of r may read it (limited
// to their domains), or nil when r carries no user.
func StoreFor(r *http.Request, st reports.Store) reports.Store {
	u := UserFrom(r.Context())
	if u == nil {
		return nil
	}
	return reports.Scoped(st, u.Domains)
}

// HashPassword returns the bcrypt hash of a password at PasswordCost
// (cost 0), or at cost.
func HashPassword(password string, cost int) (string, error) {
	if cost == 0 {
		cost = PasswordCost
	}
	if len(password) < 8 {
		return "", errors.New("the password must be at least 8 characters")
	}
	if len(password) > 72 {
		return "", errors.New("the password must be at most 72 bytes (bcrypt)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	return string(h), err
}

// HashToken returns the stored form of a token: "sha256:" and its hex
// SHA-256. Tokens are random, so a fast hash suffices.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewToken returns a random token (hex of 32 bytes).
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CheckUsers validates users: names unique and present, each with a
// password or token hash of the right form.
func CheckUsers(users []User) error {
	seen := map[string]bool{}
	for i, u := range users {
		if u.Name == "" {
			return fmt.Errorf("dashboard user %d: no name", i+1)
		}
		if seen[u.Name] {
			return fmt.Errorf("dashboard user %q: listed twice", u.Name)
		}
		seen[u.Name] = true
		if u.PasswordHash == "" && u.TokenHash == "" {
			return fmt.Errorf("dashboard user %q: give password_hash or token_hash (mailsts dashboard hash-password, mailsts dashboard new-token)", u.Name)
		}
		if u.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				return fmt.Errorf("dashboard user %q: password_hash is not a bcrypt hash: %w", u.Name, err)
			}
		}
		if u.TokenHash != "" {
			h, ok := strings.CutPrefix(u.TokenHash, "sha256:")
			if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != sha256.Size {
				return fmt.Errorf("dashboard user %q: token_hash must be sha256: and 64 hex digits", u.Name)
			}
		}
		if len(u.Domains) > reports.MaxFilterDomains {
			return fmt.Errorf("dashboard user %q: more than %d domains", u.Name, reports.MaxFilterDomains)
		}
	}
	return nil
}

func (a *Auth) init() {
	a.once.Do(func() {
		a.sessions = make(map[string]*session)
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password of anyone"), bcrypt.MinCost)
		if len(a.Users) > 0 {
			// Same cost as the users' hashes, so timing tells nothing.
			if c, err := bcrypt.Cost([]byte(a.Users[0].PasswordHash)); err == nil {
				a.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password of anyone"), c)
			}
		}
		if a.LoginLimiter == nil {
			a.LoginLimiter = &httpapi.RateLimiter{Rate: loginPerMin / 60.0, Burst: loginBurst, Now: a.Now}
		}
		a.loadSessions()
	})
}

func (a *Auth) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Auth) ttl() time.Duration {
	if a.SessionTTL > 0 {
		return a.SessionTTL
	}
	return DefaultSessionTTL
}

// checkPassword returns the user named name if password is theirs.
func (a *Auth) checkPassword(name, password string) *User {
	for i := range a.Users {
		u := &a.Users[i]
		if u.Name == name && u.PasswordHash != "" {
			if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil {
				return u
			}
			return nil
		}
	}
	bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
	return nil
}

// checkToken returns the user whose token this is. Every hash is
// compared, in constant time.
func (a *Auth) checkToken(token string) *User {
	if token == "" {
		return nil
	}
	got := HashToken(token)
	var found *User
	for i := range a.Users {
		u := &a.Users[i]
		if u.TokenHash != "" && subtle.ConstantTimeCompare([]byte(got), []byte(strings.ToLower(u.TokenHash))) == 1 {
			found = u
		}
	}
	return found
}

// apiTokenUser is the user of the API bearer token of --api-token-file.
var apiTokenUser = User{Name: "api-token"}

// bearerUser returns the user of the request's bearer token, nil when
// none matches.
func (a *Auth) bearerUser(r *http.Request) *User {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || len(tok) > maxCredential {
		return nil
	}
	tok = strings.TrimSpace(tok)
	if a.APIToken != "" && httpapi.BearerTokenMatches(r, sha256.Sum256([]byte(a.APIToken))) {
		u := apiTokenUser
		return &u
	}
	return a.checkToken(tok)
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *Auth) newSession(u *User) *session {
	a.init()
	now := a.now()
	id := randomID()
	s := &session{id: id, key: cookieKey(id), user: u, csrf: randomID(), expires: now.Add(a.ttl())}
	a.mu.Lock()
	if len(a.sessions) >= maxSessions {
		var oldest *session
		for key, x := range a.sessions {
			if !now.Before(x.expires) {
				delete(a.sessions, key)
			} else if oldest == nil || x.expires.Before(oldest.expires) {
				oldest = x
			}
		}
		if len(a.sessions) >= maxSessions && oldest != nil {
			delete(a.sessions, oldest.key)
		}
	}
	a.sessions[s.key] = s
	snap := a.snapshotLocked(now)
	a.mu.Unlock()
	a.saveSessions(snap)
	return s
}

// sessionOf returns the live session of r's cookie.
func (a *Auth) sessionOf(r *http.Request) *session {
	a.init()
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) > 100 {
		return nil
	}
	key := cookieKey(c.Value)
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[key]
	if s == nil {
		return nil
	}
	if !a.now().Before(s.expires) {
		delete(a.sessions, key) // the file drops it at the next save or load
		return nil
	}
	return s
}

func (a *Auth) endSession(s *session) {
	a.mu.Lock()
	delete(a.sessions, s.key)
	snap := a.snapshotLocked(a.now())
	a.mu.Unlock()
	a.saveSessions(snap)
}

func (a *Auth) secure(r *http.Request) bool { return a.SecureCookie || r.TLS != nil }

func (a *Auth) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
}

// sameOrigin refuses a cross-site form post: a browser sends Origin with
// a POST; when present it must name this host. (The CSRF token is the
// main defence; this one costs nothing.)
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// signedIn wraps a page: without a live session a GET is sent to the
// sign-in form, anything else gets 401.
func (s *Server) signedIn(h handlerFunc) http.Handler {
	inner := s.serve(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := s.Auth.sessionOf(r)
		if sess == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.renderStatus(w, r, http.StatusUnauthorized, "sign in first")
			return
		}
		ctx := context.WithValue(context.WithValue(r.Context(), userKey, sess.user), sessionKey, sess)
		inner.ServeHTTP(w, r.WithContext(ctx))
	})
}

// GuardAPI lets through API requests with a bearer token (the API token
// or a user's) or a session cookie; others get 401. The user goes into
// the request's context for StoreFor.
func (a *Auth) GuardAPI(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := a.bearerUser(r)
		if u == nil {
			if sess := a.sessionOf(r); sess != nil {
				u = sess.user
			}
		}
		if u == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailsts"`)
			http.Error(w, "sign in, or send a bearer token (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey, u)))
	})
}

// safeNext keeps a post-sign-in target on this site: a path, not
// "//host" or a URL.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || len(next) > 2048 {
		return "/"
	}
	return next
}

type loginData struct {
	Next, Error, CSRF string
	Name              string
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) error {
	if sess := s.Auth.sessionOf(r); sess != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	return s.showLogin(w, r, http.StatusOK, loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) error {
	d.CSRF = randomID()
	s.Auth.setCookie(w, r, loginCookie, d.CSRF, "/login", 3600)
	return s.render(w, r, status, "login", "Sign in", d, "")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	a := s.Auth
	a.init()
	if ok, wait := a.LoginLimiter.Allow(r.RemoteAddr); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait/time.Second)+1)))
		return &httpError{status: http.StatusTooManyRequests, msg: "too many sign-in attempts from your address; wait a minute"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		return badRequest("bad form", err)
	}
	c, err := r.Cookie(loginCookie)
	form := r.PostForm.Get("csrf")
	if !sameOrigin(r) || err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		return &httpError{status: http.StatusForbidden, msg: "the sign-in form expired or came from another site; reload it and try again"}
	}
	name, password, token := r.PostForm.Get("name"), r.PostForm.Get("password"), r.PostForm.Get("token")
	next := safeNext(r.PostForm.Get("next"))
	var u *User
	if len(name) <= maxCredential && len(password) <= maxCredential && len(token) <= maxCredential {
		if token != "" {
			u = a.checkToken(strings.TrimSpace(token))
		} else {
			u = a.checkPassword(name, password)
		}
	}
	if u == nil {
		s.log().Info("dashboard: sign-in failed", "name", name, "remote", r.RemoteAddr)
		return s.showLogin(w, r, http.StatusUnauthorized, loginData{Next: next, Error: "wrong name, password or token", Name: name})
	}
	sess := a.newSession(u)
	a.setCookie(w, r, sessionCookie, sess.id, "/", int(a.ttl()/time.Second))
	a.setCookie(w, r, loginCookie, "", "/login", -1)
	s.log().Info("dashboard: signed in", "name", u.Name, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	sess := sessionFrom(r.Context())
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		return badRequest("bad form", err)
	}
	if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.csrf)) != 1 {
		return &httpError{status: http.StatusForbidden, msg: "the form came from another site or an old page; reload and try again"}
	}
	s.Auth.endSession(sess)
	s.Auth.setCookie(w, r, sessionCookie, "", "/", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
