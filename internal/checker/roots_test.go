package checker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// The checker names the root a policy host's chain depends on
// (sts.fetch.root, sts.policy.root): the testnet's CA, which is not in the
// curated set; an unverified chain has no root.
func TestPolicyRoot(t *testing.T) {
	t.Parallel()
	n := defaultNet(t)
	c := newChecker(t, n, false)
	r := c.Check(context.Background(), "enforce.example")
	sum := sha256.Sum256(n.CA().Certificate().Raw)
	root := r.STS.Fetch.Root
	if root == nil || root.SHA256 != hex.EncodeToString(sum[:]) || root.Curated || root.Subject != n.CA().Certificate().Subject.String() {
		t.Fatalf("root %+v\n%s", root, dump(r))
	}
	if !hasFinding(r, want{"sts.policy.root", SeverityInfo, ""}) {
		t.Errorf("no sts.policy.root\n%s", dump(r))
	}
	if r := c.Check(context.Background(), "expired.example"); r.STS.Fetch == nil || r.STS.Fetch.Root != nil {
		t.Errorf("expired.example: %+v", r.STS.Fetch)
	}
}
