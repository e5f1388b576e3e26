package oauth

import (
	"net/netip"

	"github.com/tokengate/tokengate/internal/iplist"
)

func parseIPs(s []string) (iplist.List, error) { return iplist.Parse(s) }

// parseAddr returns the zero Addr for "" or garbage, which no non-empty
// allow-list admits.
func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a
}
