package jsonkeys

import (
	"reflect"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		skip []string
		bad  []string
	}{
		{`{"domain":"a","max_age":1,"mx":["x"]}`, nil, nil},
		{`[{"repairs":[{"Code":"x","detail":"y"}]}]`, nil, []string{"[].repairs[].Code"}},
		{`{"a":{"b-c":1}}`, nil, []string{"a.b-c"}},
		{`{"a":{"b-c":1}}`, []string{"a"}, nil},
		{`[{"report":{"organization-name":"x"}},{"report":{"report-id":"y"}}]`, []string{"[].report"}, nil},
		{`{"domains":{"Example.ORG":{"ok":1,"Bad":2}}}`, []string{"domains.{}"}, []string{"domains.{}.Bad"}},
		{"{\"a\":1}\n{\"B\":2}\n", nil, []string{"B"}},
		{`{"_x":1,"1a":2,"a1_b":3}`, nil, []string{"1a", "_x"}},
	} {
		bad, err := Check([]byte(c.in), c.skip...)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(bad, c.bad) && !(len(bad) == 0 && len(c.bad) == 0) {
			t.Errorf("%s skip %v: got %q, want %q", c.in, c.skip, bad, c.bad)
		}
	}
	for _, in := range []string{"", "{", "[1,"} {
		if _, err := Check([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
