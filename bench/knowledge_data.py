"""The data of quality.knowledge_update (bench/knowledge_update.py): knowledge that changes.

Two sets, both written here and deterministic:
- CONVERSATIONS: 7 short conversations in which something the user said stops being true ("the fact
  changed"), each recorded as the episodes of one session and asked about in that session. They are
  modelled on the kept-aside third-party set issue 25 describes (4 to 7 turns each; two of them are
  its examples: the move to Austin and the new phone number), which is not in the repository.
- generate(seed): a dev set of subjects (people, customers, projects), each with attributes whose
  value changes 1 to 4 times over two years; each value stated in a sentence drawn from several
  phrasings, each attribute asked about in 3 phrasings whose words the statements do not use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SEED = 25


# -- the 7 conversations ------------------------------------------------------------------------
@dataclass(frozen=True)
class Conversation:
    name: str
    turns: tuple[str, ...]
    query: str
    # the turns (0-based) that state the value that holds at the end: one of them must rank first
    current: frozenset[int]
    # the turns that state the value it replaced
    stale: frozenset[int]


CONVERSATIONS = (
    Conversation("city", (
        "User: I live in Boston, in a small flat near the harbour.",
        "Assistant: Boston is a lovely city, especially in the autumn.",
        "User: I just moved to Austin last week.",
        "Assistant: The weather is perfect there this time of year!",
        "User: Yes, it's much warmer than I'm used to.",
    ), "Which city does the user live in?", frozenset({2}), frozenset({0})),
    Conversation("phone", (
        "User: My phone number is 555-0101.",
        "Assistant: Thanks, I've noted it down.",
        "User: Can you remind me about the dentist on Friday?",
        "Assistant: Sure, a reminder is set for Friday morning.",
        "User: I got a new phone number. It's 555-0202 now.",
        "Assistant: Updated, I'll use that one from now on.",
    ), "What is my phone number?", frozenset({4}), frozenset({0})),
    Conversation("job", (
        "User: I work as a nurse at St. Mary's hospital.",
        "Assistant: That must be demanding work.",
        "User: It is, especially the night shifts.",
        "User: Big news: I left the hospital and started as a data analyst at Lumen Bank.",
        "Assistant: Congratulations on the new role!",
    ), "Where is the user employed?", frozenset({3}), frozenset({0})),
    Conversation("diet", (
        "User: I'm vegetarian, so please no meat in any recipe.",
        "Assistant: Noted, vegetarian recipes only.",
        "User: Could you suggest something for dinner tonight?",
        "Assistant: How about a mushroom risotto?",
        "User: By the way, I started eating fish again, so I'm pescatarian now.",
        "Assistant: Good to know, fish dishes are back on the menu.",
    ), "What are the user's dietary restrictions?", frozenset({4}), frozenset({0})),
    Conversation("standup", (
        "User: Our team standup is at 9:30 every morning.",
        "Assistant: Got it, I'll keep your mornings free around then.",
        "User: Our manager moved the standup to 10:15 starting next week.",
        "Assistant: Okay, I'll plan around the new time.",
    ), "What time is the daily standup meeting?", frozenset({2}), frozenset({0})),
    Conversation("dog", (
        "User: My dog is called Biscuit.",
        "Assistant: What a cute name!",
        "User: He's a golden retriever, three years old.",
        "User: Sadly Biscuit passed away. Last month we adopted a rescue dog and named her Luna.",
        "Assistant: I'm so sorry for your loss, and welcome to the family, little one.",
        "User: Thank you, she's settling in well.",
    ), "What is the name of the user's dog?", frozenset({3}), frozenset({0})),
    Conversation("invoices", (
        "User: Please send our invoices to billing@oldco.com.",
        "Assistant: Will do.",
        "User: Also, we need them as PDF files.",
        "Assistant: Sure, PDF it is.",
        "User: Change of plans: our accounts email is now finance@newco.io, use that for invoices.",
        "Assistant: Understood, I've changed it.",
        "User: Great, thanks.",
    ), "Which email address should the invoices go to?", frozenset({4}), frozenset({0})),
)


# -- the generated dev set ----------------------------------------------------------------------
@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]
    # how a value is first stated, and how a change is stated ({s} subject, {v} value)
    first: tuple[str, ...]
    change: tuple[str, ...]
    # how it is asked about, every phrasing asked: no word stem in common with the statements
    # (to_tsvector('english'), the subject and the value aside)
    queries: tuple[str, ...]


CITIES = ("Denver", "Austin", "Seattle", "Chicago", "Boston", "Portland", "Atlanta", "Phoenix",
          "Nashville", "Miami", "San Diego", "Minneapolis", "Pittsburgh", "Raleigh", "Detroit",
          "Toronto", "Vancouver", "Dublin", "Lisbon", "Berlin")
COMPANIES = ("Lumen Bank", "Acme Robotics", "Globex", "Initech", "Northwind Traders",
             "Umbrella Health", "Stark Logistics", "Wayne Foods", "Hooli", "Pied Piper",
             "Vandelay Industries", "Soylent Labs", "Cyberdyne Systems", "Tyrell Energy",
             "Wonka Confectionery", "Gringotts Finance")
PEOPLE = ("Maria Lopez", "Tom Becker", "Aisha Khan", "Lars Nilsson", "Priya Raman", "Kenji Sato",
          "Elena Petrova", "Samuel Okafor", "Chloe Martin", "Diego Alvarez", "Hannah Weber",
          "Omar Haddad", "Grace Liu", "Noah Fischer", "Fatima Zahra", "Lucas Moreau", "Ingrid Berg",
          "Rahul Mehta", "Sofia Rossi", "Ethan Walsh", "Yuki Tanaka", "Amara Nwosu", "Jonas Keller",
          "Leila Farah", "Mateo Garcia", "Nora Lindqvist", "Victor Dubois", "Zara Ahmed",
          "Felix Wagner", "Isla Murphy", "Arjun Nair", "Camille Laurent", "Daniel Cohen",
          "Eva Novak", "Hugo Silva", "Mei Chen")
MANAGERS = ("Rosa Diaz", "Jake Peralta", "Amy Santiago", "Terry Jeffords", "Gina Linetti",
            "Charles Boyle", "Leslie Knope", "Ben Wyatt", "Ann Perkins", "April Ludgate")
CUSTOMERS = ("Brightwave Media", "Copperleaf Farms", "Driftwood Hotels", "Evergreen Dental",
             "Foxglove Studios", "Granite Peak Outfitters", "Harbor Lights Cafe",
             "Ironclad Security", "Juniper Analytics", "Kestrel Aviation", "Lighthouse Legal",
             "Maple Street Bakery", "Nimbus Cloudworks", "Oakridge Clinic", "Pinecone Games",
             "Quartz Jewelry")
PROJECTS = ("Falcon", "Orion", "Bluebird", "Nightingale", "Sequoia", "Kodiak", "Marigold", "Tundra",
            "Zephyr", "Cobalt", "Lantern", "Meridian", "Aurora", "Basalt")

PERSON = (
    Attribute("city", CITIES,
              ("{s} lives in {v}.", "{s} has a flat in {v}.", "Home for {s} is {v}."),
              ("{s} just moved to {v}.", "{s} relocated to {v} last month.",
               "{s} packed up and is settling into a new place in {v}."),
              ("Which city is {s} in now?", "In what town does {s} reside?",
               "Where can I find {s} these days?")),
    Attribute("employer", COMPANIES,
              ("{s} works at {v}.", "{s} is employed by {v}.",
               "{s} has been with {v} for a while."),
              ("{s} took a new job at {v}.", "{s} quit and joined {v}.",
               "{s} started working for {v} this week."),
              ("Which company pays {s}'s salary?", "Which firm has {s} on staff?",
               "What organisation is {s} on the payroll of?")),
    Attribute("diet", ("vegetarian", "vegan", "pescatarian", "on a keto diet", "gluten-free",
                       "dairy-free", "eating everything, no restrictions"),
              ("{s} is {v}.", "When cooking for {s}, remember: {v}.", "{s} told me they are {v}."),
              ("{s} changed their diet and is {v} now.", "These days {s} is {v}.",
               "{s} has switched to being {v}."),
              ("What food preferences does {s} have?", "Is there any food {s} avoids?",
               "What should I keep in mind when making a meal for {s}?")),
    Attribute("phone", tuple(f"555-{n:04d}" for n in range(1010, 1100, 7)),
              ("{s}'s phone number is {v}.", "You can reach {s} at {v}.", "{s}'s mobile is {v}."),
              ("{s} has a new number: {v}.", "{s} changed phones, the number is {v} now.",
               "Call {s} on {v} from now on."),
              ("How do I get hold of {s} by telephone?", "What digits should I dial for {s}?",
               "Which line rings for {s}?")),
)
CUSTOMER = (
    Attribute("plan", ("Free", "Starter", "Pro", "Business", "Enterprise"),
              ("{s} is on the {v} plan.", "{s} subscribes to our {v} tier.", "{s} pays for {v}."),
              ("{s} upgraded to the {v} plan.", "{s} switched their subscription to {v}.",
               "{s} moved to the {v} tier."),
              ("What level of service has {s} bought?", "Which package does {s} have with us?",
               "What pricing option is {s} using?")),
    Attribute("manager", MANAGERS,
              ("{v} manages the {s} account.", "The account manager for {s} is {v}.",
               "{s} is looked after by {v}."),
              ("{s} was handed over to {v}.", "{v} took over the {s} account.",
               "From now on {v} is the contact person for {s}."),
              ("Who on our team is responsible for {s}?",
               "Whom should I talk to internally about {s}?",
               "Which colleague owns the relationship with {s}?")),
    Attribute("headquarters", CITIES,
              ("{s} has its head office in {v}.", "{s} is headquartered in {v}.",
               "{s}'s main office is in {v}."),
              ("{s} relocated its headquarters to {v}.", "{s} moved the head office to {v}.",
               "{s} opened a new main office in {v} and closed the old one."),
              ("Where is {s} based?", "In which city is {s}'s corporate base?",
               "Where does {s} run its business from?")),
)
PROJECT = (
    Attribute("status", ("in planning", "in development", "in beta testing", "launched", "on hold",
                         "cancelled"),
              ("Project {s} is {v}.", "{s} is currently {v}.", "The {s} project is {v}."),
              ("Project {s} is now {v}.", "Update on {s}: it is {v}.",
               "{s} has moved on and is {v}."),
              ("What is the status of {s}?", "How far along is {s}?",
               "Where does {s} stand?")),
    Attribute("lead", PEOPLE[:18],
              ("{v} leads project {s}.", "{s} is run by {v}.", "The lead of {s} is {v}."),
              ("{v} took over the lead of {s}.", "{s} has a new lead: {v}.",
               "{v} is now in charge of {s}."),
              ("Who heads {s}?", "Who is the boss of {s}?",
               "Whom does the {s} team report to?")),
    Attribute("database", ("PostgreSQL", "MySQL", "MongoDB", "SQLite", "Cassandra", "DynamoDB",
                           "Redis", "Elasticsearch"),
              ("{s} stores its data in {v}.", "{s} runs on {v}.", "The {s} backend uses {v}."),
              ("{s} migrated to {v}.", "{s} switched its storage to {v}.",
               "The team moved {s} over to {v}."),
              ("Which database technology is behind {s}?", "What DBMS powers {s}?",
               "Where are {s}'s records persisted?")),
)


@dataclass(frozen=True)
class Value:
    text: str                # the sentence that states it
    value: str
    valid_from: datetime


@dataclass(frozen=True)
class Chain:
    subject: str
    attribute: str
    key: str                 # e.g. 'maria_lopez.city'
    values: tuple[Value, ...]  # oldest first; the last holds now
    queries: tuple[str, ...]   # every phrasing of the question, asked one by one


@dataclass(frozen=True)
class DevSet:
    chains: tuple[Chain, ...]

    def statements(self) -> list[tuple[Chain, int]]:
        """Every (chain, index of its value), in the order they were said (valid_from, then key)."""
        return sorted(((c, i) for c in self.chains for i in range(len(c.values))),
                      key=lambda ci: (ci[0].values[ci[1]].valid_from, ci[0].key, ci[1]))


START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
SPAN_DAYS = 700


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


def generate(seed: int = SEED, people: int = 24, customers: int = 12, projects: int = 12) -> DevSet:
    """Subjects with 2 attributes each, every attribute with 2 to 5 values (1 to 4 changes) at
    increasing days over SPAN_DAYS; a value never repeats the one before it."""
    rng = random.Random(seed)
    chains: list[Chain] = []
    groups = ((PEOPLE[-people:], PERSON), (CUSTOMERS[:customers], CUSTOMER),
              (PROJECTS[:projects], PROJECT))
    for subjects, attributes in groups:
        for subject in subjects:
            for attr in rng.sample(attributes, 2):
                count = rng.randint(2, 5)
                values = rng.sample(attr.values, count)
                days = sorted(rng.sample(range(SPAN_DAYS), count))
                stated = []
                for i, (value, day) in enumerate(zip(values, days, strict=True)):
                    template = rng.choice(attr.first if i == 0 else attr.change)
                    at = START + timedelta(days=day, minutes=rng.randrange(600))
                    stated.append(Value(template.format(s=subject, v=value), value, at))
                asked = tuple(q.format(s=subject) for q in attr.queries)
                chains.append(Chain(subject, attr.name, f"{slug(subject)}.{attr.name}",
                                    tuple(stated), asked))
    return DevSet(tuple(chains))
