package mtasts

import "time"

// Observer receives events from a [Cache], for metrics. Keep
// implementations fast and non-blocking: they run on the lookup path. The
// Prometheus adapter lives in internal/metrics; library packages never
// register metrics themselves.
type Observer interface {
	// Answered is called once for every answer of [Cache.Get] and
	// [Cache.Refresh], with where the answer came from and the discovery
	// error it carries (nil when discovery succeeded or was not needed).
	Answered(domain string, src Source, err error)
	// Fetched is called after every HTTPS policy fetch the Cache makes,
	// with its wall-clock duration and its error (nil on success).
	Fetched(domain string, elapsed time.Duration, err error)
}
