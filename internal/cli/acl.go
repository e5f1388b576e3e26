package cli

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/internal/legacy"
	"github.com/tokengate/tokengate/internal/store"
)

// AddACLCommands makes cmd the `acl` command: grant or revoke a permission
// on a resource to a role or a user, as the legacy platform's
// `acl --role ... --p USE --res ws:::gen-ws-token`.
func AddACLCommands(cmd *cobra.Command, connect Connect) {
	grantFlags := func(c *cobra.Command) func() (map[string]any, error) {
		role := c.Flags().String("role", "", "the role to grant to (or --user)")
		user := c.Flags().String("user", "", "the user to grant to (or --role)")
		perm := c.Flags().String("p", "", "the permission, e.g. USE")
		res := c.Flags().String("res", "", "the resource, e.g. ws:::gen-ws-token")
		return func() (map[string]any, error) {
			if (*role == "") == (*user == "") || *perm == "" || *res == "" {
				return nil, errors.New("give --role or --user, --p and --res")
			}
			return map[string]any{"role": *role, "user": *user, "permission": *perm, "resource": *res}, nil
		}
	}
	for _, verb := range []string{"grant", "revoke"} {
		c := &cobra.Command{
			Use:   verb + " (--role <role> | --user <name>) --p <permission> --res <resource>",
			Short: map[string]string{"grant": "Grant a permission", "revoke": "Revoke a permission"}[verb],
			Args:  cobra.NoArgs,
		}
		body := grantFlags(c)
		c.RunE = func(c *cobra.Command, _ []string) error {
			b, err := body()
			if err != nil {
				return err
			}
			return call(c, connect, http.MethodPost, "/tokengate/acl/"+verb, b, printGrants)
		}
		cmd.AddCommand(c)
	}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List permission grants", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return call(c, connect, http.MethodGet, "/tokengate/acl", nil, printGrants)
		},
	})
}

// AddLegacyCommands makes cmd the `legacy` command.
func AddLegacyCommands(cmd *cobra.Command, connect Connect) {
	tokens := &cobra.Command{
		Use:   "tokens [--used-within 30d] [--unused-for 90d] [--json]",
		Short: "Report the legacy tokens: still in use, from where and for which sites (to retire the legacy path with evidence)",
		Long: `Report the legacy tokens: each with its last use (time, address, site)
and the addresses it was used from recently, then a summary: how many
legacy tokens there are, how many of those listed were used within the
window (--used-within, default 30 days) or never, and the addresses and
sites they are used from, with how many tokens each.

  --used-within 30d  only the tokens used within that time (still in use)
  --unused-for 90d   only the tokens not used for that time, never used
                     ones among them (candidates to revoke)

Durations are whole days ("30d") or Go durations ("36h").`,
		Args: cobra.NoArgs,
	}
	usedWithin := tokens.Flags().String("used-within", "", "only the tokens used within this time, e.g. 30d")
	unusedFor := tokens.Flags().String("unused-for", "", "only the tokens unused for this time, e.g. 90d")
	asJSON := tokens.Flags().Bool("json", false, "print the report as JSON")
	tokens.RunE = func(c *cobra.Command, _ []string) error {
		q := url.Values{}
		if *usedWithin != "" {
			q.Set("used_within", *usedWithin)
		}
		if *unusedFor != "" {
			q.Set("unused_for", *unusedFor)
		}
		uri := "/tokengate/legacy/tokens"
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
		show := printLegacy
		if *asJSON {
			show = printJSON
		}
		return call(c, connect, http.MethodGet, uri, nil, show)
	}
	cmd.AddCommand(tokens)
}

func printGrants(w io.Writer, data []byte) error {
	var v struct {
		Grants []struct{ Role, User, Permission, Resource string } `json:"grants"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TO\tPERMISSION\tRESOURCE")
	for _, g := range v.Grants {
		to := "role " + g.Role
		if g.User != "" {
			to = "user " + g.User
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", to, g.Permission, g.Resource)
	}
	return tw.Flush()
}

// printLegacy prints the migration report: a table of the tokens (ALSO
// FROM: their recent addresses other than the last one), then the
// summary and the tables of addresses and sites. Addresses and sites go
// through store.CleanHost: the gate records them so, but a store written
// before it did may hold a client's tabs or terminal escapes.
func printLegacy(w io.Writer, data []byte) error {
	var v legacy.Report
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	dash := func(s string) string { return cmp.Or(s, "-") }
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OWNER\tID\tENABLED\tLAST USED\tFROM\tHOST\tALSO FROM")
	for _, t := range v.Tokens {
		last := "never"
		if t.LastUsedAt != nil {
			last = t.LastUsedAt.Format(time.RFC3339)
		}
		var also []string
		for _, a := range t.RecentAddresses {
			if a.IP != t.LastUsedIP {
				also = append(also, store.CleanHost(a.IP))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\n", t.Owner, t.ID, t.Enabled, last, dash(store.CleanHost(t.LastUsedIP)), dash(store.CleanHost(t.LastUsedHost)), dash(strings.Join(also, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := v.Summary
	fmt.Fprintf(w, "\n%d legacy tokens, %d listed: %d used within %s days, %d never used\n",
		s.Total, s.Listed, s.UsedWithin, strconv.FormatFloat(s.WindowDays, 'f', -1, 64), s.NeverUsed)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(s.Addresses) > 0 {
		fmt.Fprintln(tw, "\nADDRESS\tTOKENS\tLAST USED")
		for _, a := range s.Addresses {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", store.CleanHost(a.Address), a.Tokens, a.LastUsedAt.Format(time.RFC3339))
		}
	}
	if len(s.Sites) > 0 {
		fmt.Fprintln(tw, "\nSITE\tTOKENS\tLAST USED")
		for _, a := range s.Sites {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", store.CleanHost(a.Site), a.Tokens, a.LastUsedAt.Format(time.RFC3339))
		}
	}
	return tw.Flush()
}
