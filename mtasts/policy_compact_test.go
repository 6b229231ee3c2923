package mtasts

import (
	"testing"
	"unsafe"
)

// A parsed policy owns its memory: the mode is the package constant, and
// the mx patterns and extensions are packed into one string of their own,
// one after the other, so that a cached policy does not keep the fetched
// body (or its split lines) alive. Slices have exact capacity; nil stays
// nil.
func TestParsedPolicyIsCompact(t *testing.T) {
	t.Parallel()
	bodies := []string{
		f2,
		"version: STSv1\nmode: testing\nmx: a.example\nmx: b.example\nmax_age: 86400\nx-ext: one two\ny: 2\n",
		"version: STSv1\r\nmode: none\r\nmax_age: 0\r\nz: 1\r\n",
	}
	for _, tc := range policyCases() {
		bodies = append(bodies, tc.body)
	}
	checked := 0
	for _, body := range bodies {
		p, err := ParsePolicy([]byte(body))
		if err != nil {
			continue
		}
		checked++
		var c Mode
		switch p.Mode {
		case ModeEnforce:
			c = ModeEnforce
		case ModeTesting:
			c = ModeTesting
		case ModeNone:
			c = ModeNone
		}
		if unsafe.StringData(string(p.Mode)) != unsafe.StringData(string(c)) {
			t.Errorf("%q: Mode is not the package constant", body)
		}
		if cap(p.MX) != len(p.MX) || cap(p.Extensions) != len(p.Extensions) {
			t.Errorf("%q: capacities %d/%d for lengths %d/%d", body, cap(p.MX), cap(p.Extensions), len(p.MX), len(p.Extensions))
		}
		var parts []string
		parts = append(parts, p.MX...)
		for _, x := range p.Extensions {
			parts = append(parts, x.Key, x.Value)
		}
		// In the body, "\nmx: " and the like separate the parts; packed,
		// each starts where the one before ends.
		for i := 1; i < len(parts); i++ {
			prev, cur := parts[i-1], parts[i]
			if unsafe.Add(unsafe.Pointer(unsafe.StringData(prev)), len(prev)) != unsafe.Pointer(unsafe.StringData(cur)) {
				t.Errorf("%q: %q does not follow %q in one buffer", body, cur, prev)
				break
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d bodies parsed; the test checks nothing", checked)
	}
}
