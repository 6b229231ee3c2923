package reports

import (
	"encoding/json"

	"github.com/mailsts/mailsts/tlsrpt"
)

// MarshalJSON writes the metadata and the report in its RFC 8460 wire
// form under "report".
func (s StoredReport) MarshalJSON() ([]byte, error) {
	type meta StoredReport
	var rep json.RawMessage
	if s.Report != nil {
		b, err := tlsrpt.Marshal(s.Report)
		if err != nil {
			return nil, err
		}
		rep = b
	}
	m := meta(s)
	if m.Repairs == nil {
		m.Repairs = []tlsrpt.Repair{}
	}
	if m.Problems == nil {
		m.Problems = []tlsrpt.Problem{}
	}
	return json.Marshal(struct {
		meta
		Report json.RawMessage `json:"report"`
	}{m, rep})
}
