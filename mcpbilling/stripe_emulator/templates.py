"""HTML for the hosted pages, as ``string.Template``s (values are escaped before substitution)."""

from string import Template

LAYOUT = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; background: #f6f8fa; color: #1a1f36; margin: 0; }
  main { max-width: 560px; margin: 40px auto; background: #fff; padding: 28px 32px;
         border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
  .banner { background: #fff4e5; color: #7a4b00; font-size: 12px; padding: 6px 10px;
            border-radius: 4px; margin-bottom: 18px; }
  .error { background: #fdecea; color: #a0281b; padding: 10px; border-radius: 4px; }
  .notice { background: #e8f5e9; color: #1b5e20; padding: 10px; border-radius: 4px; }
  table { width: 100%; border-collapse: collapse; }
  td { padding: 6px 0; border-bottom: 1px solid #eee; }
  td.amount { text-align: right; } .total td { font-weight: 600; border-bottom: none; }
  label { display: block; margin: 12px 0 4px; font-size: 13px; color: #4f566b; }
  input, select { width: 100%; box-sizing: border-box; padding: 8px; font-size: 15px;
                  border: 1px solid #ccd; border-radius: 4px; }
  .row { display: flex; gap: 12px; } .row > div { flex: 1; }
  button { margin-top: 18px; width: 100%; padding: 10px; font-size: 15px; border: 0;
           border-radius: 4px; background: #635bff; color: #fff; cursor: pointer; }
  button.secondary { background: #fff; color: #635bff; border: 1px solid #635bff; }
  .card { border: 1px solid #e3e8ee; border-radius: 6px; padding: 12px 16px; margin: 12px 0; }
  .muted { color: #697386; font-size: 13px; } a { color: #635bff; }
</style>
</head>
<body><main>
<div class="banner">Stripe emulator: test mode, no real money moves.</div>
$body
</main></body>
</html>
""")

CHECKOUT = Template("""<h1>$merchant</h1>
<p class="muted">$heading</p>
$message
<table>$lines
<tr class="total"><td>Total</td><td class="amount">$total</td></tr>
</table>
<form method="post" action="$action">
  <label for="email">Email</label>
  <input id="email" name="email" type="email" value="$email" $email_lock>
  <label for="card_number">Card number</label>
  <input id="card_number" name="card_number" inputmode="numeric" autocomplete="cc-number"
         placeholder="4242 4242 4242 4242" required>
  <div class="row">
    <div><label for="exp">Expiry</label><input id="exp" name="exp" placeholder="12 / 34"></div>
    <div><label for="cvc">CVC</label><input id="cvc" name="cvc" placeholder="123"></div>
  </div>
  <label for="name">Name on card</label>
  <input id="name" name="name" autocomplete="cc-name">
  <button type="submit">$submit</button>
</form>
<p class="muted">Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined;
4000 0000 0000 9995 has insufficient funds.</p>
$cancel
""")

LINE = Template("""<tr><td>$description</td><td class="amount">$amount</td></tr>""")

MESSAGE = Template("""<h1>$heading</h1>
<p>$text</p>
$link
""")

PORTAL = Template("""<h1>$merchant</h1>
<p class="muted">Signed in as $customer</p>
$message
<h2>Subscriptions</h2>
$subscriptions
<h2>Payment method</h2>
<p>$card</p>
<form method="post" action="$action">
  <input type="hidden" name="action" value="update_card">
  <label for="card_number">New card number</label>
  <input id="card_number" name="card_number" inputmode="numeric"
         placeholder="4242 4242 4242 4242" required>
  <label for="name">Name on card</label>
  <input id="name" name="name">
  <button type="submit" class="secondary">Update card</button>
</form>
<h2>Invoices</h2>
$invoices
<p><a href="$return_url">&larr; Return to $merchant</a></p>
""")

SUBSCRIPTION = Template("""<div class="card">
  <strong>$plan</strong> &middot; $status<br>
  <span class="muted">$period</span>
  $actions
</div>""")

ACTION = Template("""<form method="post" action="$action">
  <input type="hidden" name="action" value="$name">
  <input type="hidden" name="subscription" value="$subscription">
  $extra
  <button type="submit" class="$style">$label</button>
</form>""")

RECEIPT = Template("""<h1>Receipt from $merchant</h1>
<p class="muted">Receipt $number &middot; $date</p>
<table>
<tr><td>$description</td><td class="amount">$amount</td></tr>
<tr class="total"><td>Amount paid</td><td class="amount">$amount</td></tr>
<tr><td>Refunded</td><td class="amount">$refunded</td></tr>
<tr><td>Payment method</td><td>$card</td></tr>
</table>
""")

INVOICE = Template("""<h1>Invoice $number</h1>
<p class="muted">$merchant &middot; $status</p>
<table>$lines
<tr class="total"><td>Amount due</td><td class="amount">$due</td></tr>
<tr><td>Amount paid</td><td class="amount">$paid</td></tr>
</table>
""")
