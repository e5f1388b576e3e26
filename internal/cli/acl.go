package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
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
	cmd.AddCommand(&cobra.Command{
		Use:   "tokens",
		Short: "List legacy tokens with their last use (to retire the legacy path with evidence)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return call(c, connect, http.MethodGet, "/tokengate/legacy/tokens", nil, printLegacy)
		},
	})
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

func printLegacy(w io.Writer, data []byte) error {
	var v struct {
		Tokens []struct {
			Owner        string     `json:"owner"`
			ID           string     `json:"id"`
			Enabled      bool       `json:"enabled"`
			LastUsedAt   *time.Time `json:"last_used_at"`
			LastUsedIP   string     `json:"last_used_ip"`
			LastUsedHost string     `json:"last_used_host"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OWNER\tID\tENABLED\tLAST USED\tFROM\tHOST")
	for _, t := range v.Tokens {
		last := "never"
		if t.LastUsedAt != nil {
			last = t.LastUsedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", t.Owner, t.ID, t.Enabled, last, t.LastUsedIP, t.LastUsedHost)
	}
	return tw.Flush()
}
