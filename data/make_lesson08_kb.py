"""Make lesson 08's retrieval data: a multi-tenant help-centre and labelled questions (seeded, offline).

Twenty tenants (software companies using the support desk) each have a help centre of 12 articles,
drawn from 18 shared topics (password reset, refunds, SSO, ...) and written with the tenant's own
product name, plan names and numbers. Because tenants share topics, an index searched without a
tenant filter returns other companies' articles for the same question: the leak the lesson's
tenant filter prevents.

Each question is labelled with the one article (``doc_id``) that answers it. Questions paraphrase
the topic in other words than the article, so retrieval has to match meaning, not copy text.

* ``lesson08_kb.jsonl``: ``tenant, doc_id, topic, title, text``
* ``lesson08_questions.jsonl``: ``tenant, question, doc_id`` (paraphrases 1-3: the notebook's set)
* ``lesson08_questions_hidden.jsonl``: same columns, paraphrase 4 (the check's hidden set)

Run from the repository root: ``python data/make_lesson08_kb.py`` (same seed, same files).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 8
TENANTS = 20
ARTICLES_PER_TENANT = 12
OUT = Path(__file__).resolve().parent

COMPANIES = [
    ("acme", "Acme Ledger"), ("globex", "Globex Sync"), ("initech", "Initech TPS"), ("umbrella", "Umbrella Vault"),
    ("hooli", "Hooli Mail"), ("piedpiper", "Pied Piper Drive"), ("stark", "Stark Ops"), ("wayne", "Wayne Track"),
    ("wonka", "Wonka Orders"), ("cyberdyne", "Cyberdyne Monitor"), ("tyrell", "Tyrell HR"), ("soylent", "Soylent Meals"),
    ("massive", "Massive Dynamic CRM"), ("aperture", "Aperture Tests"), ("oscorp", "Oscorp Labs"),
    ("vandelay", "Vandelay Imports"), ("dunder", "Dunder Paper"), ("gringotts", "Gringotts Pay"),
    ("monarch", "Monarch Books"), ("nakatomi", "Nakatomi Rooms"),
]  # fmt: skip

# topic: (title, article text, four question paraphrases). {p}: product, {n}: a number, {plan}: a plan.
TOPICS: dict[str, tuple[str, str, list[str]]] = {
    "password_reset": (
        "Resetting your password",
        "To reset your {p} password, click 'Forgot password' on the sign-in page. We email a reset link "
        "that expires after {n} minutes. Check your spam folder if it does not arrive.",
        ["I forgot my password, how do I get back in?", "The reset link in my email no longer works",
         "How can I change my login password?", "I can't sign in because I don't remember my password"],
    ),
    "refund": (
        "Refund policy",
        "{p} refunds annual {plan} subscriptions in full within {n} days of purchase. Monthly plans are not "
        "refunded, but you can cancel before the next billing date.",
        ["Can I get my money back?", "I want a refund for my yearly subscription",
         "Do you return payments if I am not satisfied?", "Is it possible to be reimbursed after buying the plan?"],
    ),
    "cancel": (
        "Cancelling your subscription",
        "Cancel your {p} subscription under Settings > Billing > Cancel plan. Your account stays active "
        "until the end of the paid period and your data is kept for {n} days.",
        ["How do I stop my subscription?", "I want to cancel my plan", "Where is the button to end my membership?",
         "Stop charging me every month, how do I quit?"],
    ),
    "invoice": (
        "Downloading invoices",
        "Every {p} invoice is available as a PDF under Settings > Billing > Invoices. Invoices are issued on "
        "the {n}th of each month and include your VAT number.",
        ["Where can I find my invoices?", "I need a PDF receipt for accounting", "How do I download last month's bill?",
         "My accountant wants a copy of the invoice with our VAT number"],
    ),
    "sso": (
        "Single sign-on (SAML SSO)",
        "{p} supports SAML single sign-on with Okta, Azure AD and Google Workspace on the {plan} plan. "
        "An admin uploads the identity provider metadata under Security > SSO.",
        ["Can we log in with Okta?", "How do I set up SAML for my company?",
         "Does it work with Azure Active Directory sign-on?", "We want employees to sign in through our identity provider"],
    ),
    "two_factor": (
        "Two-factor authentication",
        "Turn on two-factor authentication for {p} under Profile > Security. Scan the QR code with an "
        "authenticator app and keep the {n} backup codes somewhere safe.",
        ["How do I enable 2FA?", "I lost my phone with the authenticator app", "Can I add a second login step for security?",
         "Where are my backup codes for two-step verification?"],
    ),
    "export": (
        "Exporting your data",
        "Export all of your {p} data as CSV or JSON under Settings > Data > Export. Large exports are "
        "prepared in the background and emailed as a download link within {n} hours.",
        ["How can I download all my data?", "I need a CSV export of everything",
         "Can I take my records out of your system?", "Is there a way to back up my information to a file?"],
    ),
    "delete_account": (
        "Deleting your account",
        "To delete your {p} account permanently, go to Settings > Account > Delete account. Deletion "
        "removes all data after a {n}-day grace period and cannot be undone.",
        ["How do I close my account for good?", "Please erase my profile and all my data",
         "I want to remove my account permanently", "Can you delete everything you store about me?"],
    ),
    "team_members": (
        "Inviting team members",
        "Invite colleagues to {p} from Team > Invite. The {plan} plan includes {n} seats; each extra "
        "seat is billed monthly. Invited users get an email to join.",
        ["How do I add a colleague?", "Can I invite my coworkers to our workspace?",
         "How many users can we have on our plan?", "I want to give a new employee access"],
    ),
    "rate_limits": (
        "API rate limits",
        "The {p} API allows {n} requests per minute per key. Requests over the limit get HTTP 429 with a "
        "retry-after header; wait that long before retrying.",
        ["Why am I getting 429 errors from the API?", "How many API calls can I make per minute?",
         "The API says too many requests", "What is the throttling limit for integrations?"],
    ),
    "api_keys": (
        "Creating API keys",
        "Create an API key for {p} under Developer > API keys. Keys are shown once; store them in a secret "
        "manager and rotate them every {n} days.",
        ["Where do I get an API token?", "How do I generate a key for the developer API?",
         "I need credentials to call your API from my script", "How can I rotate or revoke an access key?"],
    ),
    "webhooks": (
        "Webhooks",
        "{p} sends webhooks for new and updated records to the HTTPS endpoint you register under "
        "Developer > Webhooks. Failed deliveries are retried {n} times with backoff.",
        ["How do I get notified when a record changes?", "Can you call my server when something happens?",
         "My endpoint is not receiving event callbacks", "How do I register an HTTP callback URL?"],
    ),
    "slack": (
        "Slack integration",
        "Connect {p} to Slack under Integrations > Slack. Choose a channel and {p} posts a message there "
        "for every new ticket and mention.",
        ["Can I get alerts in Slack?", "How do I connect our Slack workspace?",
         "Post notifications to a chat channel", "Is there an integration with our team chat?"],
    ),
    "billing_address": (
        "Changing billing details",
        "Update your company name, billing address and VAT number for {p} under Settings > Billing > "
        "Details. Changes apply to the next invoice.",
        ["How do I change the address on my invoices?", "Our company moved, update the billing address",
         "Where do I edit the VAT number and company name?", "The invoice has the wrong company details"],
    ),
    "payment_method": (
        "Updating your payment method",
        "Change the credit card {p} charges under Settings > Billing > Payment method. We accept Visa, "
        "Mastercard and SEPA debit; a failed charge is retried after {n} days.",
        ["My card expired, how do I add a new one?", "Can I pay by bank transfer instead of credit card?",
         "The payment failed, how do I update my card?", "How do I switch the card you charge?"],
    ),
    "upgrade": (
        "Upgrading your plan",
        "Upgrade from the Starter plan to {plan} at any time under Settings > Billing > Plans. You pay the "
        "prorated difference today and the new limits apply at once, including {n} GB of storage.",
        ["How do I move to a bigger plan?", "What do I get if I upgrade?",
         "I need more storage, can I change my subscription tier?", "How much does switching plans cost mid-month?"],
    ),
    "mobile_app": (
        "Mobile apps",
        "{p} has apps for iOS and Android. Download them from the App Store or Google Play and sign in with "
        "the same account; offline mode keeps the last {n} days of data.",
        ["Is there an iPhone app?", "Can I use it on my Android phone?",
         "Does the phone app work without internet?", "Where do I download the mobile version?"],
    ),
    "outage_status": (
        "Service status and outages",
        "Check status.{t}.example for live {p} service status and incidents. Subscribe there to get an email "
        "when an outage starts and ends; our uptime target is {n}.9%.",
        ["Is the service down right now?", "The site is not loading, is there an outage?",
         "Where can I see if you have an incident?", "How do I get alerts when your system is unavailable?"],
    ),
}  # fmt: skip

PLANS = ["Business", "Pro", "Enterprise", "Team", "Growth", "Scale"]


def make(seed: int = SEED) -> tuple[list[dict], list[dict], list[dict]]:
    """The articles, the notebook's questions and the hidden questions, from ``seed``."""
    rng = random.Random(seed)
    articles, questions, hidden = [], [], []
    for tenant, product in COMPANIES[:TENANTS]:
        plan = rng.choice(PLANS)
        for topic in sorted(rng.sample(sorted(TOPICS), ARTICLES_PER_TENANT)):
            title, template, paraphrases = TOPICS[topic]
            doc_id = f"{tenant}/{topic}"
            text = template.format(p=product, plan=plan, n=rng.choice([3, 5, 7, 10, 14, 30, 60, 99]), t=tenant)
            articles.append({"tenant": tenant, "doc_id": doc_id, "topic": topic, "title": title, "text": text})
            for question in paraphrases[:3]:
                questions.append({"tenant": tenant, "question": question, "doc_id": doc_id})
            hidden.append({"tenant": tenant, "question": paraphrases[3], "doc_id": doc_id})
    return articles, questions, hidden


def write(rows: list[dict], name: str) -> None:
    with open(OUT / name, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    articles, questions, hidden = make()
    write(articles, "lesson08_kb.jsonl")
    write(questions, "lesson08_questions.jsonl")
    write(hidden, "lesson08_questions_hidden.jsonl")
    print(f"{len(articles)} articles, {len(questions)} questions, {len(hidden)} hidden questions")
