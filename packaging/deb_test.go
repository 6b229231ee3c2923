// Package packaging tests the Debian package `make deb` builds (nfpm.yaml,
// the maintainer scripts under scripts/) by installing it into a scratch
// root with the host's dpkg.
package packaging

import (
	"bufio"
	"context"
	"crypto/md5"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsts/mailsts/internal/testnet"
	"github.com/mailsts/mailsts/postfix"
)

// TestDebianPackage builds two versions of the package and installs,
// upgrades, removes and purges them in a scratch root:
//
//	dpkg --root=DIR --force-script-chrootless
//
// runs the maintainer scripts on the host with DPKG_ROOT=DIR (they honour
// it: useradd --prefix, paths under $DPKG_ROOT, no systemctl), so nothing
// outside DIR changes; the test checks that the host's dpkg database is
// untouched. What it cannot exercise here: systemctl enable/start/stop in
// the scripts (skipped under DPKG_ROOT) and adduser (used on real systems;
// useradd --prefix in the scratch root).
func TestDebianPackage(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("not root: dpkg --root needs root to set file ownership (CI runs this as root)")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "make", "useradd", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: cannot build and install the Debian package", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	work := t.TempDir()
	deb1 := makeDeb(t, ctx, filepath.Join(work, "v1"), "v1.0.0")
	deb2 := makeDeb(t, ctx, filepath.Join(work, "v2"), "v1.0.1")

	root := scratchRoot(t, filepath.Join(work, "root"))
	hostStatus := fileSum(t, "/var/lib/dpkg/status")
	dpkg := func(args ...string) string {
		t.Helper()
		args = append([]string{"--root=" + root, "--log=" + filepath.Join(work, "dpkg.log"),
			"--force-script-chrootless", "--force-confdef", "--force-confold"}, args...)
		out, err := exec.CommandContext(ctx, "dpkg", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	in := func(p string) string { return filepath.Join(root, p) }

	// Install.
	dpkg("-i", deb1)
	for _, f := range []string{"/usr/bin/mailsts", "/lib/systemd/system/mailsts-policyd.service",
		"/lib/systemd/system/mailsts-serve.service", "/lib/systemd/system/mailsts-tlsrpt-collect.service", "/etc/mailsts/policyd.yml", "/etc/mailsts/reports.yml",
		"/usr/share/man/man1/mailsts.1.gz", "/usr/share/man/man5/mailsts-policyd.yml.5.gz",
		"/usr/share/man/man5/mailsts-reports.yml.5.gz", "/usr/share/bash-completion/completions/mailsts",
		"/usr/share/zsh/vendor-completions/_mailsts", "/usr/share/fish/vendor_completions.d/mailsts.fish"} {
		if _, err := os.Stat(in(f)); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	conffiles, _ := os.ReadFile(in("/var/lib/dpkg/info/mailsts.conffiles"))
	if string(conffiles) != "/etc/mailsts/policyd.yml\n/etc/mailsts/reports.yml\n" {
		t.Errorf("conffiles = %q", conffiles)
	}
	uid := userID(t, in("/etc/passwd"))
	st, err := os.Stat(in("/var/lib/mailsts"))
	if err != nil {
		t.Fatal(err)
	}
	if owner := statUID(st); owner != uid || st.Mode().Perm() != 0o750 {
		t.Errorf("/var/lib/mailsts: owner %d mode %v, want %d (mailsts) 0750", owner, st.Mode().Perm(), uid)
	}
	unit, _ := os.ReadFile(in("/lib/systemd/system/mailsts-policyd.service"))
	for _, want := range []string{"\nUser=mailsts\n", "\nExecStart=/usr/bin/mailsts policyd\n", "\nStateDirectory=mailsts\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("mailsts-policyd.service lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(string(unit), "DynamicUser") {
		t.Error("mailsts-policyd.service still uses DynamicUser")
	}
	versionIs(t, ctx, in("/usr/bin/mailsts"), "v1.0.0")
	policydAnswers(t, ctx, in("/usr/bin/mailsts"), in("/etc/mailsts/policyd.yml"))
	serveAnswers(t, ctx, in("/usr/bin/mailsts"), in("/etc/mailsts/reports.yml"))

	// Upgrade: a changed conffile is kept, the user is not created twice.
	local := "\n# local change kept across upgrades\n"
	appendFile(t, in("/etc/mailsts/policyd.yml"), local)
	if err := os.WriteFile(in("/var/lib/mailsts/state"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dpkg("-i", deb2)
	versionIs(t, ctx, in("/usr/bin/mailsts"), "v1.0.1")
	if b, _ := os.ReadFile(in("/etc/mailsts/policyd.yml")); !strings.HasSuffix(string(b), local) {
		t.Error("upgrade replaced the changed /etc/mailsts/policyd.yml")
	}
	if b, _ := os.ReadFile(in("/etc/passwd")); strings.Count(string(b), "\nmailsts:") != 1 {
		t.Errorf("/etc/passwd after upgrade:\n%s", b)
	}
	if status := dpkg("-s", "mailsts"); !strings.Contains(status, "Version: 1.0.1\n") || !strings.Contains(status, "Status: install ok installed") {
		t.Errorf("after upgrade:\n%s", status)
	}

	// Remove: the program goes, configuration and state stay.
	dpkg("-r", "mailsts")
	if _, err := os.Stat(in("/usr/bin/mailsts")); !os.IsNotExist(err) {
		t.Errorf("after remove, /usr/bin/mailsts: %v", err)
	}
	for _, f := range []string{"/etc/mailsts/policyd.yml", "/var/lib/mailsts/state"} {
		if _, err := os.Stat(in(f)); err != nil {
			t.Errorf("after remove: %v", err)
		}
	}
	if status := dpkg("-s", "mailsts"); !strings.Contains(status, "Status: deinstall ok config-files") {
		t.Errorf("after remove:\n%s", status)
	}

	// Purge: configuration and state go too.
	dpkg("-P", "mailsts")
	for _, f := range []string{"/etc/mailsts/policyd.yml", "/etc/mailsts/reports.yml", "/var/lib/mailsts"} {
		if _, err := os.Stat(in(f)); !os.IsNotExist(err) {
			t.Errorf("after purge, %s: %v", f, err)
		}
	}
	if out, err := exec.CommandContext(ctx, "dpkg", "--root="+root, "-s", "mailsts").CombinedOutput(); err == nil {
		t.Errorf("after purge, dpkg -s mailsts succeeds:\n%s", out)
	}
	if fileSum(t, "/var/lib/dpkg/status") != hostStatus {
		t.Error("the host's dpkg database changed")
	}
}

// makeDeb runs `make deb` for version into dir and returns the package.
func makeDeb(t *testing.T, ctx context.Context, dir, version string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "make", "-C", "..", "deb", "DEBDIR="+dir, "VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deb VERSION=%s: %v\n%s", version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "mailsts_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb VERSION=%s made %v", version, debs)
	}
	if want := "mailsts_" + strings.TrimPrefix(version, "v") + "_"; !strings.HasPrefix(filepath.Base(debs[0]), want) {
		t.Errorf("package %s, want %s…", filepath.Base(debs[0]), want)
	}
	return debs[0]
}

// scratchRoot makes an empty dpkg database and the account files useradd
// needs under dir.
func scratchRoot(t *testing.T, dir string) string {
	t.Helper()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
		"etc/passwd":             "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":              "root:x:0:\n",
		"etc/shadow":             "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":            "root:*::\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func fileSum(t *testing.T, path string) [16]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return md5.Sum(b)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// userID reads the mailsts user's uid from a passwd file.
func userID(t *testing.T, passwd string) int {
	t.Helper()
	b, err := os.ReadFile(passwd)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^mailsts:x:(\d+):(\d+):[^:]*:/var/lib/mailsts:/usr/sbin/nologin$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no system user mailsts in %s:\n%s", passwd, b)
	}
	uid, _ := strconv.Atoi(string(m[1]))
	if uid == 0 || uid >= 1000 {
		t.Errorf("mailsts uid %d is not a system uid", uid)
	}
	return uid
}

func versionIs(t *testing.T, ctx context.Context, bin, version string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "mailsts "+version+"\ncommit: ") {
		t.Errorf("%s --version: %v\n%s", bin, err, out)
	}
}

// policydAnswers starts the installed policyd with the installed
// configuration on a loopback port of its choosing, against the fake
// Internet, and asks it over socketmap.
func policydAnswers(t *testing.T, ctx context.Context, bin, config string) {
	t.Helper()
	n, err := testnet.Start(ctx, testnet.DefaultScenario(), testnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	addr := startDaemon(t, ctx, regexp.MustCompile(`msg=listening .*address=(\S+)`), bin, "policyd",
		"--config", config, "--listen", "127.0.0.1:0",
		"--dns", n.DNSAddr(), "--ca-file", n.CAFile(), "--https-port", strconv.Itoa(n.HTTPSPort()),
		"--state-dir", t.TempDir(), "--log-level", "info")
	c, err := postfix.DialSocketmap(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Lookup(ctx, "postfix", "enforce.example")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != postfix.StatusOK || !strings.HasPrefix(r.Data, "secure ") {
		t.Errorf("installed policyd answered %v %q for enforce.example, want OK secure …", r.Status, r.Data)
	}
}

// startDaemon runs bin with args until the test ends and returns the first
// submatch of re in its log: the daemon logs where it listens.
func startDaemon(t *testing.T, ctx context.Context, re *regexp.Regexp, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	sc := bufio.NewScanner(stderr)
	var found string
	var log []string
	for i := 0; i < 200 && found == "" && sc.Scan(); i++ {
		log = append(log, sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			found = m[1]
		}
	}
	if found == "" {
		t.Fatalf("%s %s did not say where it listens:\n%s", bin, args[0], strings.Join(log, "\n"))
	}
	go func() { // keep draining so the daemon never blocks on its log
		for sc.Scan() {
		}
	}()
	return found
}

// serveAnswers starts the installed report receiver with the installed
// reports.yml on a loopback port of its choosing and posts a report that
// is not one: it must answer 400 (kept as rejected input), which proves the
// configuration loads, the database opens and the handler runs.
func serveAnswers(t *testing.T, ctx context.Context, bin, config string) {
	t.Helper()
	url := startDaemon(t, ctx, regexp.MustCompile(`listening.* url=(\S+)`), bin, "serve",
		"--config", config, "--listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "reports.db"))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/tlsrpt+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("installed serve answered %s to an empty report, want 400", resp.Status)
	}
}
