// Compiled by `tsc -p __test__/types-bare`: a consumer without @azure/identity, whose
// credential is its own object of the same shape.
import type { CredentialsProvider, TokenCredentialLike } from '@copilot-chat/redis-store';
import { createConversationStore, entraIdCredentials } from '@copilot-chat/redis-store';

const own: TokenCredentialLike = {
  async getToken(scopes: string | string[]) {
    return { token: `token for ${String(scopes)}`, expiresOnTimestamp: Date.now() + 3_600_000 };
  },
};
const credentials: CredentialsProvider = entraIdCredentials(own);
const store = createConversationStore({ redisUrl: 'rediss://cache.example.net:10000', credentials });
void store;
