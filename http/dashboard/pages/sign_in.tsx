/** The sign-in form: the admin token (printed at first start) or an API key. */
import { Bare, Notice } from "../layout.tsx";
import { BASE } from "../session.ts";

export function SignInPage(props: { next: string; error?: string }) {
  return (
    <Bare title="Sign in">
      <div class="card signin">
        <h1>Sign in to Postern</h1>
        {props.error ? <Notice kind="error">{props.error}</Notice> : null}
        <form method="post" action={`${BASE}/sign-in`}>
          <input type="hidden" name="next" value={props.next} />
          <label for="token">Admin token or API key</label>
          <input
            id="token"
            name="token"
            type="password"
            autocomplete="current-password"
            required
            aria-describedby="token-hint"
          />
          <p id="token-hint" class="muted small">
            The admin token is printed once when Postern first starts (or set with
            POSTERN_ADMIN_TOKEN). An API key (<code>pst_…</code>) shows its own account only.
          </p>
          <button type="submit">Sign in</button>
        </form>
      </div>
    </Bare>
  );
}
