package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailsts/mailsts/internal/reports"
	"github.com/mailsts/mailsts/internal/reports/ingest"
)

// HandlerFunc is an HTTP handler that returns its error (STYLE 11): the
// client sees the short message of an *HTTPError, the log gets the cause.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// HTTPError is an error with the status and the text the client sees.
type HTTPError struct {
	Status int
	// Code is the error's stable name in the answer (see ErrorBody);
	// empty means the name of Status (StatusCode).
	Code string
	// Msg is shown to the client; Err is logged only.
	Msg string
	Err error
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *HTTPError) Unwrap() error { return e.Err }

func serve(log *slog.Logger, h HandlerFunc) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var he *HTTPError
		if !errors.As(err, &he) {
			he = &HTTPError{Status: http.StatusInternalServerError, Msg: "internal error", Err: err}
		}
		level := slog.LevelInfo
		if he.Status >= 500 {
			level = slog.LevelError
		}
		log.Log(r.Context(), level, "reports: http request failed", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "status", he.Status, "error", err)
		if he.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "300")
		}
		writeError(w, he.Status, he.Code, he.Msg)
	})
}

// Receiver is the HTTPS report endpoint of RFC 8460 §5.4 (RPT-HTTP): it
// takes a POST whose body is the report, application/tlsrpt+gzip or
// application/tlsrpt+json (application/json, application/gzip and the
// other types tlsrpt.Decode accepts are tolerated).
//
// Answers: 201 when the report was stored, 200 for a duplicate (RFC 8460
// §5.4 "successful" status, RPT-HTTP-3), both only after the commit;
// 413 above the size cap (the rest of the body is not read), 415 for a
// type that cannot hold a report, 400 for a body that is not a report
// (the input is kept as rejected in all three cases), 405 for other
// methods, 429 with Retry-After beyond the Limiter's rate, 503 when the
// store failed (nothing stored: retry).
type Receiver struct {
	Ingester *ingest.Ingester
	// Limiter, when set, answers 429 with Retry-After to a client
	// address beyond its rate, before reading the body.
	Limiter *RateLimiter
	Logger  *slog.Logger
}

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serve(rc.Logger, rc.receive).ServeHTTP(w, r)
}

func (rc *Receiver) receive(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return &HTTPError{Status: http.StatusMethodNotAllowed, Msg: "POST a TLS report (RFC 8460 §5.4)"}
	}
	if rc.Limiter != nil {
		if ok, wait := rc.Limiter.Allow(r.RemoteAddr); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
			return &HTTPError{Status: http.StatusTooManyRequests, Msg: "too many requests from your address, retry later"}
		}
	}
	// A hard cap on top of the Ingester's, so that a wrong Content-Length
	// cannot make it read more.
	body := http.MaxBytesReader(w, r.Body, rc.Ingester.MaxInput()+1)
	res, err := rc.Ingester.Body(r.Context(), body, r.Header.Get("Content-Type"), r.ContentLength, reports.SourceHTTP, r.RemoteAddr)
	switch {
	case errors.Is(err, ingest.ErrRead):
		return &HTTPError{Status: http.StatusBadRequest, Msg: "could not read the request body", Err: err}
	case err != nil:
		return &HTTPError{Status: http.StatusServiceUnavailable, Msg: "report not stored, try again later", Err: err}
	}
	switch res.Outcome {
	case ingest.OutcomeStored, ingest.OutcomeDuplicate:
		status, word := http.StatusCreated, "stored"
		if res.Outcome == ingest.OutcomeDuplicate {
			status, word = http.StatusOK, "duplicate, already stored"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		for _, rr := range res.Reports {
			note := ""
			if rr.Conflict {
				note = " (another report with this organisation and report-id differs; both kept)"
			}
			fmt.Fprintf(w, "%s: report-id %q%s\n", word, rr.ReportID, note)
		}
		return nil
	}
	rj := res.Rejections[0]
	he := &HTTPError{Status: http.StatusBadRequest, Code: CodeNotAReport, Err: rj.Err}
	switch rj.Reason {
	case reports.ReasonTooLarge:
		he.Status, he.Code = http.StatusRequestEntityTooLarge, ""
		he.Msg = fmt.Sprintf("report too large (limit %d bytes, %d decompressed)", rc.Ingester.MaxInput(), rc.Ingester.MaxOutput())
	case reports.ReasonBadType:
		he.Status, he.Code = http.StatusUnsupportedMediaType, ""
		he.Msg = "unsupported Content-Type: send application/tlsrpt+gzip or application/tlsrpt+json"
	case reports.ReasonFutureDate:
		he.Msg = "report rejected: its date range starts in the future"
	case reports.ReasonNoReportID:
		he.Msg = "report rejected: report-id is missing"
	case reports.ReasonImplausible:
		he.Msg = fmt.Sprintf("report rejected: implausible session counts (at most %d per counter)", int64(ingest.MaxSessionCount))
	default:
		he.Msg = "not a TLS report: " + reports.ClipText(rj.Err.Error(), 200)
	}
	he.Msg += fmt.Sprintf(" (kept for inspection as rejected input %d)", rj.ID)
	return he
}

// API serves the query API as JSON (GET only), mounted at /api/v1/:
//
//	GET /api/v1/summary?since=&until=&domain=&org=&mx=&result=&group-by=day,domain&authenticated=&limit=&cursor=
//	GET /api/v1/failures?since=&until=&domain=&org=&mx=&result=&authenticated=&limit=&cursor=
//	GET /api/v1/reports/{report-id}?authenticated=
//	GET /api/v1/rejected?since=&until=&limit=&cursor=
//
// Lists are pages of at most limit rows (default DefaultPageSize, at
// most MaxPageSize); a full page carries a Link header to the next one
// (rel="next"). A report shows at most MaxReportFailureDetails failure
// details (tlsrpt caps them at parsing) and reports/{id} at most 10
// reports. Dates are YYYY-MM-DD (UTC). Errors are JSON (ErrorBody) with
// status 400 (bad query), 401 (token missing or wrong), 404 (unknown
// report or path), 405 (not GET), 500 (a bug) or 503 (store failed).
//
// The API reads every stored report: serve it on loopback, or set Token
// (`mailsts serve` refuses a non-loopback API listener without one).
type API struct {
	Store  reports.Store
	Logger *slog.Logger
	// Token, when not empty, is the bearer token every request must
	// carry (RFC 6750 §2.1: "Authorization: Bearer TOKEN"); it is
	// compared in constant time, and a request without it gets 401
	// whatever its path.
	Token string
	// StoreFor, when set, returns the store a request may read (a
	// signed-in user's view limited to their domains, reports.Scoped)
	// instead of Store; nil refuses the request with 401.
	StoreFor func(r *http.Request) reports.Store
}

// store returns the store r may read.
func (a *API) store(r *http.Request) (reports.Store, error) {
	if a.StoreFor == nil {
		return a.Store, nil
	}
	if st := a.StoreFor(r); st != nil {
		return st, nil
	}
	return nil, &HTTPError{Status: http.StatusUnauthorized, Msg: "sign in or send a bearer token", Err: errors.New("no user for the request")}
}

// Handler returns the API's handler, with routes under prefix (for
// example "/api/v1").
func (a *API) Handler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	mux := http.NewServeMux()
	mux.Handle("GET "+prefix+"/summary", serve(a.Logger, a.summary))
	mux.Handle("GET "+prefix+"/failures", serve(a.Logger, a.failures))
	mux.Handle("GET "+prefix+"/reports/{id...}", serve(a.Logger, a.show))
	mux.Handle("GET "+prefix+"/rejected", serve(a.Logger, a.rejected))
	// Everything else under the prefix: 405 for a known path with
	// another method, 404 for an unknown path, as JSON like every other
	// error (the mux's own answers are text).
	mux.Handle(prefix+"/", serve(a.Logger, func(w http.ResponseWriter, r *http.Request) error {
		get := r.Clone(r.Context())
		get.Method = http.MethodGet
		if _, pattern := mux.Handler(get); pattern != prefix+"/" {
			w.Header().Set("Allow", "GET, HEAD")
			return &HTTPError{Status: http.StatusMethodNotAllowed, Msg: "only GET is allowed here"}
		}
		return &HTTPError{Status: http.StatusNotFound, Msg: "no such API path; see /api/v1/summary, failures, reports/{report-id}, rejected"}
	}))
	if a.Token == "" {
		return mux
	}
	want := sha256.Sum256([]byte(a.Token))
	deny := serve(a.Logger, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mailsts"`)
		return &HTTPError{Status: http.StatusUnauthorized, Msg: "a bearer token is required (Authorization: Bearer TOKEN)",
			Err: errors.New("missing or wrong API token")}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !BearerTokenMatches(r, want) {
			deny.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// BearerTokenMatches reports whether r carries "Authorization: Bearer T"
// (the scheme is case-insensitive, RFC 7235 §2.1) with SHA-256(T) equal to
// want. Comparing the digests in constant time reveals neither the token
// nor its length through timing.
func BearerTokenMatches(r *http.Request, want [sha256.Size]byte) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func queryError(err error) error {
	switch {
	case errors.Is(err, reports.ErrBadFilter):
		return &HTTPError{Status: http.StatusBadRequest, Code: CodeBadQuery, Msg: err.Error(), Err: err}
	case errors.Is(err, reports.ErrNotFound):
		return &HTTPError{Status: http.StatusNotFound, Code: CodeNoSuchReport, Msg: err.Error(), Err: err}
	default:
		return &HTTPError{Status: http.StatusServiceUnavailable, Msg: "query failed", Err: err}
	}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// pagedQuery reads a paged query's filter (a bad one is a 400) and the
// store the request may read.
func (a *API) pagedQuery(r *http.Request) (reports.Filter, reports.Store, error) {
	f, err := reports.ParseFilter(r.URL.Query())
	if err == nil {
		f, err = pageFilter(f)
	}
	if err != nil {
		return f, nil, queryError(err)
	}
	st, err := a.store(r)
	return f, st, err
}

func (a *API) summary(w http.ResponseWriter, r *http.Request) error {
	f, st, err := a.pagedQuery(r)
	if err != nil {
		return err
	}
	rows, err := st.Summary(r.Context(), f)
	if err != nil {
		return queryError(err)
	}
	rows, next, err := pageSummary(rows, f)
	if err != nil {
		return queryError(err)
	}
	linkNext(w, r, next)
	return writeJSON(w, nonNilSlice(rows))
}

func (a *API) failures(w http.ResponseWriter, r *http.Request) error {
	f, st, err := a.pagedQuery(r)
	if err != nil {
		return err
	}
	rows, err := st.Failures(r.Context(), f)
	if err != nil {
		return queryError(err)
	}
	if len(rows) == f.Limit {
		linkNext(w, r, reports.NextFailures(rows))
	}
	return writeJSON(w, nonNilSlice(rows))
}

func (a *API) show(w http.ResponseWriter, r *http.Request) error {
	f, err := reports.ParseFilter(r.URL.Query())
	if err != nil {
		return queryError(err)
	}
	st, err := a.store(r)
	if err != nil {
		return err
	}
	rs, err := reports.ShowFiltered(r.Context(), st, r.PathValue("id"), f)
	if err != nil {
		return queryError(err)
	}
	return writeJSON(w, rs)
}

func (a *API) rejected(w http.ResponseWriter, r *http.Request) error {
	f, st, err := a.pagedQuery(r)
	if err != nil {
		return err
	}
	rows, err := st.ListRejected(r.Context(), f)
	if err != nil {
		return queryError(err)
	}
	if len(rows) == f.Limit {
		linkNext(w, r, reports.NextRejected(rows))
	}
	return writeJSON(w, nonNilSlice(rows))
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
