package mtasts

import "testing"

func BenchmarkParsePolicy(b *testing.B) {
	body := []byte(f2) // F-2
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParsePolicy(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRecord(b *testing.B) {
	const txt = "v=STSv1; id=20160831085700Z;" // F-1
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord(txt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	p := f2Policy()
	for _, bc := range []struct {
		name, host string
		want       bool
	}{
		{"exact", "backupmx.example.com", true},
		{"wildcard", "a.example.net", true},
		{"miss", "a.b.example.net", false},
		{"U-label", "bücher.example", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := p.Match(bc.host); ok != bc.want {
					b.Fatalf("Match(%q) = %v", bc.host, ok)
				}
			}
		})
	}
}
