package checker

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// schemaPaths returns every JSON field path of Report: "sts.fetch.status",
// "mx[].probe", … The shared objects CertInfo and ProbeResult are listed
// once, under the roots "cert." and "probe.", and referred to by the
// fields that hold them.
func schemaPaths() []string {
	shared := map[reflect.Type]string{
		reflect.TypeFor[CertInfo]():    "cert",
		reflect.TypeFor[ProbeResult](): "probe",
	}
	var paths []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" || !f.IsExported() {
				continue
			}
			ft := f.Type
			if f.Anonymous && tag == "" {
				walk(ft, prefix) // embedded: fields are promoted
				continue
			}
			path := prefix + tag
			paths = append(paths, path)
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
					path += "[]"
				}
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct || ft == reflect.TypeFor[time.Time]() {
				continue
			}
			if _, ok := shared[ft]; !ok {
				walk(ft, path+".")
			}
		}
	}
	walk(reflect.TypeFor[Report](), "")
	for t, root := range shared {
		walk(t, root+".")
	}
	slices.Sort(paths)
	return paths
}

// The JSON schema section of docs/check.md documents every field of the
// Report type, by its full path, and documents no field that does not
// exist (a stable, versioned schema: SchemaVersion).
func TestSchemaDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/check.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## JSON schema")
	if !ok {
		t.Fatal("docs/check.md has no JSON schema section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	if v := SchemaVersion; !strings.Contains(section, fmt.Sprintf("Schema version %d (`\"schema\": %d`", v, v)) {
		t.Errorf("the section does not state schema version %d", SchemaVersion)
	}
	// The first column of each table row names one or more paths.
	documented := map[string]bool{}
	code := regexp.MustCompile("`([^`]+)`")
	for line := range strings.Lines(section) {
		cols := strings.Split(line, "|")
		if len(cols) < 3 || !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cols[1], -1) {
			documented[m[1]] = true
		}
	}
	paths := schemaPaths()
	for _, p := range paths {
		if !documented[p] {
			t.Errorf("docs/check.md does not document the JSON field %s", p)
		}
	}
	for p := range documented {
		if !slices.Contains(paths, p) {
			t.Errorf("docs/check.md documents %s, which Report does not have", p)
		}
	}
}
