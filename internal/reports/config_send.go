package reports

import "time"

// SendConfig is the `send:` section: the sending side of TLS reporting
// (`mailsts tlsrpt collect`): where results are collected and stored, and
// how the daily reports are built. Every field is optional.
type SendConfig struct {
	// DB is the results store: sqlite:PATH or a postgres:// URL shared
	// by every MTA that reports as one organisation; empty means SQLite
	// at tlsrpt-send.db in the state directory.
	DB string `yaml:"db"`
	// Socket is the Unix datagram socket libtlsrpt sends to (Postfix's
	// smtp_tlsrpt_socket_name); SocketMode its permissions in octal.
	Socket     string `yaml:"socket"`
	SocketMode string `yaml:"socket_mode"`
	// PostfixLog is the mail log file to follow for smtp(8) delivery
	// results (a Postfix without libtlsrpt); "" follows none.
	PostfixLog string `yaml:"postfix_log"`
	// PostfixJournal follows Postfix's log in the systemd journal
	// instead (journalctl), for a Postfix that logs only there (Debian
	// 12 without rsyslog). PostfixJournalIdentifiers are the syslog
	// identifiers read (default postfix/smtp and postfix/cleanup);
	// Journalctl is the program (default journalctl from PATH).
	PostfixJournal            bool     `yaml:"postfix_journal"`
	PostfixJournalIdentifiers []string `yaml:"postfix_journal_identifiers"`
	Journalctl                string   `yaml:"journalctl"`
	// OrganizationName and ContactInfo go into every report
	// (RFC 8460 §4.4); ContactInfo's domain is the report submitter.
	OrganizationName string `yaml:"organization_name"`
	ContactInfo      string `yaml:"contact_info"`
	// Build runs the daily builder in `tlsrpt collect` (default true);
	// turn it off on all but some nodes if you like (claims make it safe
	// on all of them).
	Build *bool `yaml:"build"`
	// Node names this process in build claims; empty means host name,
	// process id and a random suffix.
	Node string `yaml:"node"`
	// Delay after midnight UTC before a day is built (late results), and
	// Spread, the random share added after it.
	Delay  time.Duration `yaml:"delay"`
	Spread time.Duration `yaml:"spread"`
	// KeepDays: results and claims older than this many days are
	// deleted; 0 means 30.
	KeepDays int `yaml:"keep_days"`
	// MaxDetails caps distinct failure-detail rows per policy per day;
	// 0 means 200.
	MaxDetails int `yaml:"max_details"`
	// ReportDir, when set, receives every built report as its RFC 8460
	// file name (a .json.gz file).
	ReportDir string `yaml:"report_dir"`
	// Buffer is how many results wait for the database at most before
	// new ones are dropped (counted); 0 means 8192.
	Buffer int `yaml:"buffer"`
}
