package main

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/mailsts/mailsts/internal/sqlitedb"
)

// peer is sys4's tlsrpt-collectd (Python, no dependencies) ready to run
// from a source tree: PYTHONPATH at the tree and at a generated
// .dist-info that declares its storage plugin's entry point, which the
// collector looks up through importlib.metadata as an installed package
// would have it.
type peer struct {
	python  string
	root    string // the source tree (holds tlsrpt_reporter/)
	meta    string // the generated .dist-info's parent
	version string // from pyproject.toml
	commit  string // the git commit, when taken from a git directory
}

// errNoPython means python3 is not installed: the peer cannot run here.
var errNoPython = errors.New("python3 not found")

// preparePeer makes the peer runnable from src: a checkout of
// sys4/tlsrpt-reporter, or a git directory whose HEAD is archived into
// dir. Nothing of it is kept after the run.
func preparePeer(src, dir string) (*peer, error) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return nil, errNoPython
	}
	p := &peer{python: python}
	if _, err := os.Stat(filepath.Join(src, "tlsrpt_reporter", "tlsrpt.py")); err == nil {
		p.root = src
	} else {
		out, err := exec.Command("git", "-C", src, "rev-parse", "HEAD").Output()
		if err != nil {
			return nil, fmt.Errorf("peer source %s: neither a checkout of tlsrpt-reporter nor a git directory", src)
		}
		p.commit = strings.TrimSpace(string(out))
		p.root = filepath.Join(dir, "peer-src")
		if err := gitArchive(src, p.root); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(p.root, "tlsrpt_reporter", "tlsrpt.py")); err != nil {
			return nil, fmt.Errorf("peer source %s: no tlsrpt_reporter/tlsrpt.py at HEAD", src)
		}
	}
	p.version = "unknown"
	if b, err := os.ReadFile(filepath.Join(p.root, "pyproject.toml")); err == nil {
		if m := regexp.MustCompile(`(?m)^version\s*=\s*"([^"]+)"`).FindSubmatch(b); m != nil {
			p.version = string(m[1])
		}
	}
	// tlsrpt-collectd finds its "sqlite" storage through the entry
	// points of the installed distribution (pyproject.toml,
	// [project.entry-points."tlsrpt.collectd"]); this is that metadata.
	p.meta = filepath.Join(dir, "peer-meta")
	di := filepath.Join(p.meta, "tlsrpt_reporter-"+p.version+".dist-info")
	if err := os.MkdirAll(di, 0o755); err != nil {
		return nil, err
	}
	files := map[string]string{
		"METADATA":         "Metadata-Version: 2.1\nName: tlsrpt_reporter\nVersion: " + p.version + "\n",
		"entry_points.txt": "[tlsrpt.collectd]\nsqlite = tlsrpt_reporter.tlsrpt:TLSRPTCollectdSQLite\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(di, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// gitArchive extracts HEAD of the git directory src into dst.
func gitArchive(src, dst string) error {
	cmd := exec.Command("git", "-C", src, "archive", "--format=tar", "HEAD")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("git archive: %w", err)
		}
		name := filepath.Join(dst, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(name, filepath.Clean(dst)+string(filepath.Separator)) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, 64<<20))
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive: %w: %s", err, stderr.String())
	}
	return nil
}

// daemon is a collector under test, running as a child process.
type daemon struct {
	name string
	sock string
	cmd  *exec.Cmd
	// exited is closed when the process has ended (waitErr set).
	exited  chan struct{}
	waitErr error
	db      *sql.DB
	query   string // the datagrams (sessions) committed so far
	log     string // a file with the daemon's own log, for errors
}

// stored returns what the daemon has committed, as a reader of its
// database sees it.
func (d *daemon) stored() int64 {
	var v int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.db.QueryRowContext(ctx, d.query).Scan(&v); err != nil {
		return 0
	}
	return v
}

// stop ends the daemon with SIGTERM (both commit what they hold) and
// returns its CPU time and what it stored in the end.
func (d *daemon) stop() (cpu time.Duration, stored int64, err error) {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		err = d.waitErr
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		err = fmt.Errorf("did not stop within 30 s of SIGTERM")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w%s", d.name, err, d.logTail())
	}
	cpu = d.cmd.ProcessState.UserTime() + d.cmd.ProcessState.SystemTime()
	stored = d.stored()
	d.db.Close()
	return cpu, stored, nil
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return ""
	}
	return "; its log ends:\n" + string(b)
}

// roDB opens a SQLite file read-only, without changing its journal mode.
func roDB(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	dsn, err := sqlitedb.DSN(path, q)
	if err != nil {
		return nil, err
	}
	return sql.Open("sqlite", dsn)
}

// wrapQlen runs argv in a new network namespace whose Unix datagram
// sockets queue qlen datagrams (net.unix.max_dgram_qlen is per network
// namespace; a socket takes the value of the namespace that creates it).
// The socket is a file, so senders outside reach it as usual.
func wrapQlen(qlen int, argv []string) []string {
	if qlen <= 0 {
		return argv
	}
	return append([]string{"unshare", "-n", "sh", "-c", `echo "$0" > /proc/sys/net/unix/max_dgram_qlen && exec "$@"`, fmt.Sprint(qlen)}, argv...)
}

// watch reaps the process when it ends.
func (d *daemon) watch() {
	d.exited = make(chan struct{})
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
}

// kill ends the process at once (after a failed start).
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// waitSocket waits until path exists or the process has ended.
func waitSocket(exited <-chan struct{}, path string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before opening its socket")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("never opened its socket")
}

// startPeer runs tlsrpt-collectd on a fresh SQLite database in dir. It
// commits every 1,000 datagrams (its default) and, with --sockettimeout
// 1, also when a second has passed since the last commit, so that the
// last datagrams of a run are committed a second after they arrive.
func (p *peer) start(dir, tag string, qlen int) (*daemon, error) {
	sock := filepath.Join(dir, tag+".sock")
	db := filepath.Join(dir, tag+".db")
	cfg := filepath.Join(dir, tag+".cfg")
	logf := filepath.Join(dir, tag+".log")
	if err := os.WriteFile(cfg, []byte("[tlsrpt_collectd]\n"), 0o644); err != nil {
		return nil, err
	}
	argv := wrapQlen(qlen, []string{p.python, "-c",
		"import sys; sys.argv[0] = 'tlsrpt-collectd'; from tlsrpt_reporter.tlsrpt import tlsrpt_collectd_main; tlsrpt_collectd_main()",
		"--storage", "sqlite://" + db, "--socketname", sock, "--config_file", cfg, "--sockettimeout", "1",
		"--log_level", "warn", "--logfilename", logf, "--pidfilename", ""})
	cmd := exec.Command(argv[0], argv[1:]...)
	env := []string{"PYTHONPATH=" + p.root + string(os.PathListSeparator) + p.meta, "PYTHONDONTWRITEBYTECODE=1"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PYTHON") && !strings.HasPrefix(e, "TLSRPT_") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	errf, err := os.Create(logf + ".stderr")
	if err != nil {
		return nil, err
	}
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = errf, errf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tlsrpt-collectd: %w", err)
	}
	d := &daemon{name: "tlsrpt-collectd " + p.version, sock: sock, cmd: cmd, log: logf,
		query: `SELECT COALESCE(SUM(cntrtotal), 0) FROM finalresults`}
	d.watch()
	if err := waitSocket(d.exited, sock); err != nil {
		d.kill()
		b, _ := os.ReadFile(logf + ".stderr")
		return nil, fmt.Errorf("tlsrpt-collectd %s%s\n%s", err, d.logTail(), b)
	}
	// Its database exists once the storage is set up, after the socket.
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(db); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.db, err = roDB(db)
	if err != nil {
		d.kill()
		return nil, err
	}
	return d, nil
}
