package httpapi

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is every error answer of the receiver and the query API, as
// JSON with the HTTP status:
//
//	{"error": {"code": "not_found", "message": "no report with report-id \"x\""}}
//
// Code is a stable lower snake_case name for programs (the Code* constants
// below, else the name of the status from StatusCode); Message is for
// people and may change.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the "error" member of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes more specific than their status.
const (
	CodeBadQuery     = "bad_query"      // 400: a filter, limit or cursor the API cannot use
	CodeNoSuchReport = "no_such_report" // 404: reports/{report-id} matched nothing
	CodeNotAReport   = "not_a_report"   // 400: the POSTed body is not a TLS report (kept as rejected input)
)

// StatusCode is the error code of an HTTP status without a more specific
// one: "bad_request", "unauthorized", "not_found", "method_not_allowed",
// "too_large", "unsupported_media_type", "rate_limited", "internal",
// "unavailable", or "error".
func StatusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusInternalServerError:
		return "internal"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "error"
}

// writeError answers with status and an ErrorBody.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	if code == "" {
		code = StatusCode(status)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	b, _ := json.Marshal(ErrorBody{ErrorDetail{code, msg}})
	w.Write(append(b, '\n'))
}
