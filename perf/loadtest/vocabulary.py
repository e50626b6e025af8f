"""The words of the generated marketplace (perf/loadtest/seed_steps.py): titles, descriptions,
cities and messages are drawn from these, and the load tests' searches and category filters
(perf/loadtest/locustfile.py, churn.py) use the same words, so they find ranked results."""

from __future__ import annotations

# Vocabulary: category -> (topics, deliverables). Titles and descriptions are drawn from these,
# so a search for web, mobile, design, data or test finds ranked results.
VOCABULARY = {
    "web": (["web", "website", "react", "django", "wordpress", "shopify", "landing page", "web app"],
            ["page", "site", "plugin", "checkout", "dashboard", "API"]),
    "mobile": (["mobile", "android", "ios", "flutter", "kotlin", "swift", "react native"],
               ["app", "screen", "release", "crash fix", "push notifications"]),
    "design": (["design", "logo", "branding", "figma", "illustration", "ux", "ui"],
               ["mockup", "logo", "style guide", "prototype", "poster"]),
    "data": (["data", "excel", "sql", "pandas", "tableau", "etl", "spreadsheet", "analytics"],
             ["report", "pipeline", "cleanup", "model", "chart"]),
    "testing": (["test", "testing", "qa", "selenium", "pytest", "cypress", "load test"],
                ["test suite", "test plan", "bug report", "regression tests"]),
    "writing": (["writing", "copywriting", "translation", "proofreading", "blog"],
                ["article", "translation", "product copy", "newsletter"]),
    "marketing": (["marketing", "seo", "social media", "ads", "email"],
                  ["campaign", "audit", "strategy", "calendar"]),
    "errands": (["moving", "delivery", "cleaning", "assembly", "gardening"],
                ["help", "pickup", "job", "visit"]),
}  # fmt: skip
CLIENTS = ["a bakery", "a startup", "a school", "a clinic", "a shop", "an NGO"]
VERBS = ["Build", "Fix", "Design", "Create", "Improve", "Set up", "Review", "Migrate", "Write", "Test"]
SENTENCES = [
    "We are a small team and need someone reliable.",
    "The scope is described below; ask questions before you start.",
    "Please share similar work you have done.",
    "Deliver in small steps so we can give feedback early.",
    "Documentation and a short handover call are part of the job.",
    "Budget is fixed; a bonus is possible for early delivery.",
    "Remote is fine; we are flexible on hours.",
    "Quality matters more than speed here.",
]
CITIES = ["Lyon", "Lagos", "Toronto", "Berlin", "Austin", "Nairobi", "Lisbon", "Osaka", "Lima", "Pune"]
MESSAGE_LINES = [
    "Hi! Is this still available?",
    "Yes, when can you start?",
    "I can start tomorrow morning.",
    "Great, I sent you the details.",
    "First version is ready for review.",
    "Looks good, a few small changes.",
    "Done, please have a look.",
    "Thanks, approving now.",
    "Could you clarify the deadline?",
    "Friday end of day works.",
]
