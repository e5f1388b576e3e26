package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/internal/keyring"
)

// AddSecretsKeyCommands adds the `secrets-key` subcommands to cmd. They
// work offline: no gateway, no store.
func AddSecretsKeyCommands(cmd *cobra.Command) {
	generate := &cobra.Command{
		Use:   "generate",
		Short: "Print a fresh random key for the secrets_key option (base64)",
		Long: `Print 32 random bytes in base64: a key for the secrets_key option, which
encrypts the signing keys in the store. Keep it where the gateway's
environment is kept (it is given as {env.TOKENGATE_SECRETS_KEY}), the same on
every node, and never in the store's backups.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			k, err := keyring.GenerateSecretsKey()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), k)
			return err
		},
	}
	cmd.AddCommand(generate)
}
