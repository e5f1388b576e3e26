package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/internal/policy"
)

// AddTokensCommands makes cmd the `tokens` command: `tokens expiring
// [--within 30d]` lists the tokens that expire or go dormant within the
// period (the admin API's GET /tokengate/tokens/expiring).
func AddTokensCommands(cmd *cobra.Command, connect Connect) {
	expiring := &cobra.Command{
		Use:   "expiring [--within 30d]",
		Short: "List the tokens that expire or go dormant soon, nearest first (and those beyond the policy's maximum lifetime)",
		Args:  cobra.NoArgs,
	}
	within := expiring.Flags().String("within", "30d", "the period: days (30d), a Go duration (72h) or seconds")
	expiring.RunE = func(c *cobra.Command, _ []string) error {
		return call(c, connect, http.MethodGet, "/tokengate/tokens/expiring?within="+url.QueryEscape(*within), nil, printExpiring)
	}
	cmd.AddCommand(expiring)
}

// printExpiring prints the listing: one line per token, the nearest
// date first; BEYOND MAX marks a token made before the policy's maximum.
func printExpiring(w io.Writer, data []byte) error {
	var v struct {
		Tokens []policy.Row `json:"tokens"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	at := func(t *time.Time, none string) string {
		if t == nil {
			return none
		}
		return t.Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OWNER\tID\tKIND\tLABEL\tEXPIRES\tDORMANT AT\tFIRST\tLAST USED\tBEYOND MAX")
	for _, t := range v.Tokens {
		first := t.First
		if first == "" {
			first = "-"
		} else if first == policy.FirstDormancy && t.DormancyWarned {
			first = "dormancy (warned)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\n", t.Owner, t.ID, t.Kind, t.Label,
			at(t.ExpiresAt, "never"), at(t.DormantAt, "-"), first, at(t.LastUsedAt, "never"), t.BeyondMaxLifetime)
	}
	return tw.Flush()
}
