package pat_test

import (
	"testing"

	"github.com/tokengate/tokengate/internal/apierr"
	"github.com/tokengate/tokengate/internal/pat"
)

// FuzzParseOverlap: any text gives an overlap between 0 and MaxOverlap or
// a 400 that names the field, never a panic.
func FuzzParseOverlap(f *testing.F) {
	for _, s := range []string{"", "0", "1h", "30m", "168h", "168h0m1s", "-1s", "3600", "604801", "8d", "1e9h", " 2h ", "tgp_x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := pat.ParseOverlap(s)
		if err != nil {
			p := apierr.For(err)
			if p.Status != 400 || p.Field != "overlap" {
				t.Fatalf("ParseOverlap(%q): %+v", s, p)
			}
			return
		}
		if d < 0 || d > pat.MaxOverlap {
			t.Fatalf("ParseOverlap(%q) = %v", s, d)
		}
	})
}
