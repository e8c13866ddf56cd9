"""A small corpus of mixed documents for tests: 20 documents about 20 distinct topics.

Five each of plain text, Markdown, HTML and PDF. Each document comes with a question that only it
answers, so search tests can check that the right document comes first. The output is
deterministic, PDFs included.
"""

from __future__ import annotations

import datetime
import html
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF

__all__ = ["CorpusDoc", "mixed_corpus", "write_corpus"]


@dataclass(frozen=True)
class CorpusDoc:
    """One test document and a question only it answers."""

    document_id: str
    filename: str
    content_type: str
    content: bytes
    query: str


def mixed_corpus() -> list[CorpusDoc]:
    """The 20 documents, in a fixed order."""
    return [
        CorpusDoc(
            document_id=f"corpus-{number:02d}-{slug}",
            filename=f"{slug}.{_EXTENSIONS[content_type]}",
            content_type=content_type,
            content=_RENDER[content_type](title, paragraphs),
            query=query,
        )
        for number, (slug, content_type, title, query, paragraphs) in enumerate(_TOPICS, start=1)
    ]


def write_corpus(dir: Path) -> list[CorpusDoc]:
    """Write every corpus document into `dir` under its file name, and return the documents."""
    dir.mkdir(parents=True, exist_ok=True)
    docs = mixed_corpus()
    for doc in docs:
        (dir / doc.filename).write_bytes(doc.content)
    return docs


def _plain(title: str, paragraphs: list[str]) -> bytes:
    return ("\n\n".join([title, *paragraphs]) + "\n").encode()


def _markdown(title: str, paragraphs: list[str]) -> bytes:
    return ("\n\n".join([f"# {title}", *paragraphs]) + "\n").encode()


def _html(title: str, paragraphs: list[str]) -> bytes:
    body = "\n".join(f"    <p>{html.escape(paragraph)}</p>" for paragraph in paragraphs)
    # A realistic page: the style, script and metadata must not reach the extracted text.
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{html.escape(title)}</title>
  <style>body {{ font-family: Georgia, serif; max-width: 40em; margin: auto; }}</style>
  <script>window.analytics = {{ page: "{html.escape(title)}" }};</script>
</head>
<body>
  <article>
    <h1>{html.escape(title)}</h1>
{body}
  </article>
  <script src="/static/site.js"></script>
</body>
</html>
"""
    return page.encode()


def _pdf(title: str, paragraphs: list[str]) -> bytes:
    pdf = FPDF()
    # A fixed date keeps the bytes the same on every run.
    pdf.set_creation_date(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.multi_cell(0, 10, text=title)
    pdf.ln(4)
    # Core fonts are latin-1 only, so the PDF topics are written in plain ASCII.
    pdf.set_font("Helvetica", size=11)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, text=paragraph)
        pdf.ln(4)
    return bytes(pdf.output())


_EXTENSIONS = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/html": "html",
    "application/pdf": "pdf",
}
_RENDER = {
    "text/plain": _plain,
    "text/markdown": _markdown,
    "text/html": _html,
    "application/pdf": _pdf,
}

# (slug, content type, title, query, paragraphs)
_TOPICS: list[tuple[str, str, str, str, list[str]]] = [
    (
        "beekeeping",
        "text/plain",
        "How honey bees make honey",
        "how do bees turn flower nectar into honey",
        [
            (
                "A honey bee colony is a single family of tens of thousands of insects living "
                "together in a hive. At its heart is one queen, who may lay more than fifteen "
                "hundred eggs a day during the height of summer. Around her are the female "
                "workers, who do almost every job the colony needs, and a few hundred male drones, "
                "whose only task is to mate with a young queen from another hive."
            ),
            (
                "Honey begins as nectar, a thin and watery sugar solution that flowers produce to "
                "attract pollinators. A forager bee sucks the nectar up through her long tongue "
                "and stores it in a special organ called the honey stomach, which is separate from "
                "the stomach she uses for her own food. A single forager may visit several hundred "
                "flowers on one trip before she flies home heavy with her load."
            ),
            (
                "Back at the hive she passes the nectar to a younger house bee, mouth to mouth. "
                "The house bees chew the nectar for a while and mix in an enzyme called invertase, "
                "which splits the sucrose into the simpler sugars glucose and fructose. This step "
                "makes the final honey less likely to crystallize and harder for microbes to "
                "spoil."
            ),
            (
                "Fresh nectar is mostly water, often seventy or eighty percent, so the bees must "
                "dry it. They spread it thinly over the walls of empty wax cells and fan their "
                "wings over the comb for hours, moving warm air through the hive until the water "
                "content drops below about eighteen percent. When a cell is full of ripe honey, "
                "the bees seal it with a cap of new beeswax, which they produce from glands on the "
                "underside of their abdomen."
            ),
            (
                "Beekeepers harvest only the surplus. A healthy colony needs somewhere between "
                "twenty and forty kilograms of honey to survive a long winter, when the bees "
                "cluster together and shiver their flight muscles to keep the queen warm. The "
                "beekeeper removes the upper boxes, called supers, uncaps the combs with a heated "
                "knife and spins them in a centrifuge called an extractor, which flings the honey "
                "out while leaving the wax comb intact for the bees to reuse."
            ),
            (
                "Good beekeeping is mostly careful observation. Every week or two during the "
                "season the keeper opens the hive, checks that the queen is laying in a compact "
                "pattern, looks for signs of disease and watches for the queen cells that warn of "
                "swarming. A calm approach, a puff of cool smoke at the entrance and slow "
                "movements keep the bees quiet and the keeper unstung."
            ),
        ],
    ),
    (
        "volcanoes",
        "text/plain",
        "How volcanoes form",
        "why do volcanoes form at subduction zones and hotspots",
        [
            (
                "A volcano is an opening in the crust of a planet through which molten rock, gas "
                "and ash escape from below. On Earth most volcanoes sit along the edges of "
                "tectonic plates, the huge slabs of rigid rock that slowly drift over the hotter, "
                "softer mantle beneath them."
            ),
            (
                "At subduction zones one plate dives beneath another. As the sinking slab "
                "descends, rising pressure and temperature drive water out of its minerals. That "
                "water seeps into the hot mantle rock above and lowers its melting point, so part "
                "of the mantle melts. The resulting magma is lighter than the surrounding rock and "
                "rises, collecting in chambers a few kilometres below the surface. The volcanoes "
                "of the Pacific Ring of Fire, from Japan to the Andes, form this way, and their "
                "sticky, gas-rich magma often erupts explosively."
            ),
            (
                "At mid-ocean ridges plates pull apart, and the mantle below rises to fill the "
                "gap. Because the pressure drops as the rock rises, it begins to melt even without "
                "extra water, a process called decompression melting. Most of this volcanism "
                "happens unseen on the deep sea floor, building new oceanic crust at a rate of a "
                "few centimetres a year. Iceland is one of the rare places where a ridge rises "
                "above sea level."
            ),
            (
                "Hotspot volcanoes are different again. They form above plumes of unusually hot "
                "mantle that rise from deep inside the Earth, far from any plate boundary. As a "
                "plate slides over a stationary plume, a chain of volcanoes forms, each one older "
                "than the next. The Hawaiian Islands are the classic example, with the active "
                "volcanoes of the Big Island at one end and worn, extinct islands stretching away "
                "to the northwest."
            ),
        ],
    ),
    (
        "sourdough",
        "text/plain",
        "Baking sourdough bread",
        "how do you keep a sourdough starter alive and ready to bake",
        [
            (
                "Sourdough bread is leavened not with commercial yeast but with a starter, a "
                "living culture of wild yeasts and lactic acid bacteria kept in a mixture of flour "
                "and water. The yeasts produce carbon dioxide that makes the dough rise, while the "
                "bacteria produce lactic and acetic acids that give the bread its tangy flavour "
                "and help it keep for longer."
            ),
            (
                "A starter needs regular feeding. Most bakers discard part of it and refresh the "
                "rest with equal weights of flour and water once or twice a day when it lives on "
                "the counter, or once a week when it sleeps in the fridge. A starter is ready to "
                "bake with when it doubles in size within four to eight hours of feeding, smells "
                "pleasantly sour and is full of bubbles. A spoonful that floats in water is "
                "another popular sign."
            ),
            (
                "A typical loaf begins with mixing flour and water and letting them rest for an "
                "hour, a step called autolyse that lets the flour absorb water and gluten begin to "
                "form. The baker then adds the starter and salt and gives the dough a series of "
                "stretches and folds over the next few hours instead of kneading it hard. This "
                "bulk fermentation ends when the dough has grown by about half and feels airy."
            ),
            (
                "After shaping, the loaf usually proofs overnight in the refrigerator. The cold "
                "slows the yeast more than the bacteria, so the flavour deepens. The next morning "
                "it is scored with a razor and baked in a very hot covered pot, which traps steam "
                "so the crust stays soft long enough for the loaf to spring up before it browns."
            ),
        ],
    ),
    (
        "apollo",
        "text/plain",
        "The Apollo program",
        "how did the Apollo lunar module land on the moon and return to orbit",
        [
            (
                "The Apollo program was the American effort of the 1960s and early 1970s to land "
                "people on the Moon and bring them safely back to Earth. It followed the "
                "one-person Mercury flights and the two-person Gemini missions, which had tested "
                "rendezvous, spacewalks and long flights in orbit. At its peak the program "
                "employed around four hundred thousand people across government, universities and "
                "industry."
            ),
            (
                "Engineers debated several ways of reaching the Moon before choosing lunar orbit "
                "rendezvous. Instead of landing one huge rocket on the Moon, a Saturn V would "
                "launch a spacecraft with two parts: the command and service module, which stayed "
                "in orbit around the Moon, and a light lunar module, which carried two astronauts "
                "down to the surface. This plan needed far less fuel and made a single Saturn V "
                "launch enough for each mission."
            ),
            (
                "The lunar module had two stages. The descent stage, with its landing legs and a "
                "throttleable engine, carried the crew from lunar orbit to the surface. During the "
                "final minutes the commander flew the craft by hand, looking for a safe place to "
                "set down while the computer handled the engine. After the astronauts finished "
                "their work on the surface, the ascent stage fired its own engine and lifted off, "
                "using the descent stage as a launch pad and leaving it behind."
            ),
            (
                "The ascent stage then climbed into lunar orbit and chased down the command "
                "module, which the third astronaut had been flying alone. After docking, the two "
                "moonwalkers crawled back through the tunnel with their rock samples, and the "
                "ascent stage was cast off. The service module engine fired behind the Moon to "
                "send the crew home, and only the small cone-shaped command module, protected by "
                "its heat shield, survived the plunge through the atmosphere to splash down in the "
                "ocean."
            ),
            (
                "Apollo 11 made the first landing in July 1969, when Neil Armstrong and Buzz "
                "Aldrin touched down in the Sea of Tranquility while Michael Collins waited in "
                "orbit. Six missions landed in all, the last in December 1972. Twelve astronauts "
                "walked on the Moon and brought back about three hundred and eighty kilograms of "
                "rock and soil, which scientists still study to learn how the Moon formed."
            ),
            (
                "The program also had its tragedies and near misses. A cabin fire during a ground "
                "test in 1967 killed the crew of Apollo 1 and led to a long redesign of the "
                "command module. In 1970 an oxygen tank exploded on the way to the Moon during "
                "Apollo 13, and the crew survived by using the lunar module as a lifeboat, looping "
                "around the Moon and returning home without landing."
            ),
        ],
    ),
    (
        "chess-openings",
        "text/plain",
        "Principles of chess openings",
        "what is the idea behind the Sicilian Defence and the Queen's Gambit",
        [
            (
                "The opening is the first phase of a chess game, usually the first ten to fifteen "
                "moves, in which both players bring out their pieces and fight for the centre. "
                "Good opening play follows a few simple principles: control the central squares, "
                "develop the knights and bishops quickly, castle to keep the king safe, and avoid "
                "moving the same piece twice without a good reason."
            ),
            (
                "The Sicilian Defence begins with 1.e4 c5. Instead of answering White's central "
                "pawn with a symmetrical move, Black attacks the d4 square from the side. If White "
                "later opens the centre with d4, Black usually trades the c-pawn for White's "
                "d-pawn, which leaves Black with an extra central pawn and a half-open c-file for "
                "the rooks. The resulting positions are unbalanced and sharp, which is why the "
                "Sicilian is a favourite of players who want to play for a win with Black."
            ),
            (
                "The Queen's Gambit begins with 1.d4 d5 2.c4. White offers the c-pawn in order to "
                "pull Black's d-pawn away from the centre. It is not a true gambit, because if "
                "Black takes the pawn White can usually win it back. Black can accept the offer, "
                "or decline it with 2...e6, building a solid pawn chain that holds the d5 square."
            ),
            (
                "Memorizing long lines of theory is less important for most players than "
                "understanding the plans behind an opening: which pawn breaks matter, where the "
                "pieces belong and which endgames the structure tends to produce."
            ),
        ],
    ),
    (
        "composting",
        "text/markdown",
        "Home composting",
        "what ratio of greens to browns should a compost pile have",
        [
            (
                "Composting turns kitchen scraps and garden waste into a dark, crumbly soil "
                "amendment. The work is done by bacteria, fungi, worms and insects that break "
                "organic matter down into humus, which holds water and feeds plants slowly over "
                "many months."
            ),
            "## Greens and browns",
            (
                "A pile needs two kinds of ingredients. Greens are rich in nitrogen: vegetable "
                "peelings, coffee grounds, fresh grass clippings and plant trimmings. Browns are "
                "rich in carbon: dry leaves, straw, shredded cardboard and small twigs. Microbes "
                "work fastest when the pile holds roughly three parts browns to one part greens by "
                "volume, which gives a carbon to nitrogen ratio of about thirty to one."
            ),
            (
                "- Too many greens make a wet, smelly pile that gives off ammonia.\n- Too many "
                "browns make a dry pile that barely breaks down.\n- Meat, dairy and oily food "
                "attract rats and are best left out."
            ),
            "## Air, water and heat",
            (
                "The microbes that compost quickly need oxygen, so the pile should be turned with "
                "a fork every week or two. It should feel as damp as a wrung-out sponge. A well "
                "built pile of at least one cubic metre heats up to between fifty and sixty-five "
                "degrees Celsius in its centre, hot enough to kill most weed seeds. When the pile "
                "no longer heats up after turning and smells of forest floor, the compost is "
                "finished and can be spread on beds."
            ),
        ],
    ),
    (
        "roman-aqueducts",
        "text/markdown",
        "Roman aqueducts",
        "how did Roman aqueducts carry water downhill over long distances",
        [
            (
                "The aqueducts of ancient Rome carried fresh water from springs and rivers in the "
                "hills to the city's fountains, baths and private houses. By the third century AD "
                "eleven aqueducts supplied Rome, delivering perhaps a million cubic metres of "
                "water a day to a population of around a million people."
            ),
            "## Gravity and gradient",
            (
                "Roman aqueducts had no pumps. Water flowed the whole way by gravity, so engineers "
                "had to lay out a channel that fell steadily but very gently from the source to "
                "the city. Typical gradients were between one and three metres of drop per "
                "kilometre. Too steep a slope would make the water scour the channel, and too "
                "shallow a slope would let it stagnate. Surveyors used an instrument called the "
                "chorobates, a long wooden table with a water groove on top, to set out levels "
                "along the route."
            ),
            (
                "Most of an aqueduct was not the famous arches at all but a covered channel, "
                "called the specus, running at or just below ground level and following the "
                "contours of the land. Where a valley blocked the way, the builders either carried "
                "the channel across on a bridge of stacked arches or, for deep valleys, used an "
                "inverted siphon: sealed lead pipes that dropped down one side and rose up the "
                "other, the water pushed up by the pressure of the higher inlet."
            ),
            "## Tunnels and maintenance",
            (
                "Hills were pierced by tunnels, dug from a line of vertical shafts so that many "
                "teams could work at once. The shafts also let workers climb down later to clear "
                "out the hard deposits of lime that built up on the channel walls. Inspection and "
                "repair were the job of a permanent staff of hundreds of slaves and workmen under "
                "the water commissioner. Sextus Julius Frontinus, who held that office at the end "
                "of the first century, wrote a treatise describing the aqueducts and the fraud of "
                "people who tapped them illegally."
            ),
            "## At the city",
            (
                "Near the city the water flowed into settling tanks, where sediment dropped out, "
                "and then into distribution tanks called castella. From there pipes led to public "
                "fountains first, then to the baths, and last to private users who paid for the "
                "privilege. Several aqueducts survive today, including the Pont du Gard in "
                "southern France and the aqueduct of Segovia in Spain, which still stands without "
                "mortar after nearly two thousand years."
            ),
        ],
    ),
    (
        "coral-reefs",
        "text/markdown",
        "Coral reefs",
        "what causes coral bleaching when the ocean gets too warm",
        [
            (
                "Coral reefs are built by tiny animals called polyps, relatives of jellyfish that "
                "live in colonies and secrete skeletons of calcium carbonate. Over thousands of "
                "years these skeletons pile up into reefs large enough to be seen from space, such "
                "as the Great Barrier Reef off the coast of Australia."
            ),
            "## A partnership with algae",
            (
                "Most reef-building corals depend on microscopic algae called zooxanthellae that "
                "live inside their tissues. The algae photosynthesize and hand over most of the "
                "sugar they make, giving the coral much of its energy, while the coral gives the "
                "algae shelter and nutrients. The algae also give corals their rich browns, greens "
                "and golds."
            ),
            "## Bleaching",
            (
                "When the water stays just one or two degrees Celsius above its usual summer "
                "maximum for several weeks, this partnership breaks down. The heat damages the "
                "algae's photosynthetic machinery, which starts to release harmful reactive "
                "oxygen, and the coral expels them. Without its algae the coral's white skeleton "
                "shows through its clear tissue, which is why the event is called bleaching. A "
                "bleached coral is not dead, but it is starving, and if temperatures do not fall "
                "quickly it may die and be overgrown by seaweed."
            ),
        ],
    ),
    (
        "bicycle-gears",
        "text/markdown",
        "Adjusting bicycle gears",
        "how do I adjust the rear derailleur when my bike chain skips gears",
        [
            (
                "A derailleur bicycle changes gear by pushing the chain sideways from one sprocket "
                "to the next. The shifter on the handlebar pulls or releases a steel cable, and "
                "the rear derailleur moves in or out in response. When the cable tension is wrong, "
                "the chain hesitates, rattles or skips between sprockets."
            ),
            "## Limit screws first",
            (
                "Two small screws on the rear derailleur, usually marked H and L, stop it from "
                "moving too far. The high limit keeps the chain from falling off the smallest "
                "sprocket into the frame, and the low limit keeps it from going past the largest "
                "sprocket into the spokes. Set these with the chain on the outermost and innermost "
                "sprockets before touching the cable."
            ),
            "## Indexing with the barrel adjuster",
            (
                "1. Shift to the smallest rear sprocket and check that the cable is snug.\n2. "
                "Shift up one gear. If the chain is slow to climb, turn the barrel adjuster "
                "anticlockwise a quarter turn to add tension.\n3. If the chain tries to climb past "
                "the next sprocket or rattles against it, turn the adjuster clockwise to release "
                "tension.\n4. Repeat across the whole cassette until every shift is quick and "
                "quiet."
            ),
            (
                "If the adjustment keeps drifting, check for a frayed or sticky cable, a bent "
                "derailleur hanger or a worn chain, which stretches as its pins wear and will skip "
                "on even a perfect adjustment."
            ),
        ],
    ),
    (
        "tea-ceremony",
        "text/markdown",
        "The Japanese tea ceremony",
        "what happens during a Japanese tea ceremony and how is matcha whisked",
        [
            (
                "The Japanese tea ceremony, called chanoyu or sado, is a ritual way of preparing "
                "and serving powdered green tea known as matcha. Shaped in the sixteenth century "
                "by the tea master Sen no Rikyu, it values simplicity, respect and calm attention "
                "to small details."
            ),
            "## The tea room",
            (
                "A traditional tea room is small and plain, often only four and a half tatami mats "
                "in size. Guests enter through a low door that forces everyone to bow, whatever "
                "their rank. An alcove holds a hanging scroll and a simple flower arrangement "
                "chosen for the season and the occasion."
            ),
            "## Making the tea",
            (
                "The host cleans each utensil in front of the guests with slow, set movements: the "
                "tea bowl, the bamboo tea scoop and the bamboo whisk. Two or three scoops of "
                "matcha go into the bowl, followed by hot water at around eighty degrees Celsius. "
                "The host then whisks the tea briskly in a zigzag motion with the wrist until a "
                "fine froth covers the surface."
            ),
            (
                "A guest receives the bowl with the right hand, places it on the left palm, turns "
                "it slightly so as not to drink from its front, and drinks in a few sips before "
                "admiring the bowl itself. A formal gathering can last up to four hours and "
                "include a light meal and a thicker tea shared from one bowl."
            ),
        ],
    ),
    (
        "printing-press",
        "text/html",
        "Gutenberg and the printing press",
        "how did Gutenberg's movable type printing press work",
        [
            (
                "Around 1450 in Mainz, the goldsmith Johannes Gutenberg brought together several "
                "technologies into a printing system that would change Europe. Block printing from "
                "carved wooden boards was already known, and in East Asia movable type of clay and "
                "metal had been used for centuries, but Gutenberg's method made it practical to "
                "print long texts quickly and cheaply in an alphabetic script."
            ),
            (
                "At the heart of his invention was the hand mould, a device for casting individual "
                "letters in metal. A punch of hard steel with a letter cut into its tip was struck "
                "into a softer copper bar to make a matrix. The matrix was fitted into the mould, "
                "and molten type metal, an alloy of lead, tin and antimony that melted at a low "
                "temperature and hardened quickly, was poured in. A skilled caster could produce "
                "thousands of identical letters a day."
            ),
            (
                "Compositors picked these letters from a case and set them in lines, which were "
                "locked into a frame called a forme. Gutenberg also developed an oil-based ink "
                "that clung to metal type far better than the water-based inks used for "
                "woodblocks. The forme was inked with leather balls and pressed against damp paper "
                "or vellum in a screw press adapted from the presses used to make wine and olive "
                "oil."
            ),
            (
                "His most famous work, the Gutenberg Bible, was finished around 1455 in about one "
                "hundred and eighty copies. Within fifty years printing shops had spread to more "
                "than two hundred European cities, and millions of books were in circulation."
            ),
        ],
    ),
    (
        "monarch-migration",
        "text/html",
        "The monarch butterfly migration",
        "where do monarch butterflies spend the winter and how do they find their way",
        [
            (
                "Every autumn millions of monarch butterflies leave Canada and the northern United "
                "States and fly south, some of them more than four thousand kilometres, to spend "
                "the winter in a small area of fir forest in the mountains of central Mexico. No "
                "single butterfly makes the round trip: the monarchs that fly south are the "
                "great-grandchildren of those that left Mexico the spring before."
            ),
            (
                "The migrating generation is different from its parents. Shorter days and cooler "
                "temperatures at the end of summer put these butterflies into a state called "
                "reproductive diapause. Instead of mating and dying within a few weeks, they store "
                "fat and live for up to eight months."
            ),
            (
                "To find their way, monarchs use a sun compass. Cells in their antennae keep time, "
                "and the butterfly compensates for the sun's movement across the sky during the "
                "day to hold a steady south-westerly heading. On cloudy days they may also use a "
                "magnetic sense."
            ),
            (
                "In Mexico the butterflies gather in dense clusters on oyamel fir trees high in "
                "the mountains, where the cool, moist air slows their metabolism without freezing "
                "them. In spring they mate and fly north to lay eggs on milkweed, the only plant "
                "their caterpillars can eat, and the cycle begins again."
            ),
        ],
    ),
    (
        "lighthouses",
        "text/html",
        "The work of a lighthouse keeper",
        "what did a lighthouse keeper do each night to keep the light burning",
        [
            (
                "Before automation, every lighthouse needed keepers who lived at the station, "
                "often with their families, on a rocky headland or an island far from town. Their "
                "central duty was simple to state and hard to perform: the light had to shine from "
                "sunset to sunrise, every night of the year, without fail."
            ),
            (
                "In the nineteenth century most lights burned oil, first whale oil and later "
                "kerosene. Each afternoon the keeper carried fuel up the spiral stairs, trimmed "
                "the wicks so they would burn without smoke, and polished the glass and brass. At "
                "dusk he lit the lamp, and through the night he or an assistant kept watch in "
                "shifts, checking the flame and winding the clockwork that turned the lens so the "
                "light flashed in the station's own pattern."
            ),
            (
                "The great lenses designed by Augustin Fresnel, rings of glass prisms that bent "
                "the lamp's light into a powerful horizontal beam, had to be cleaned of soot and "
                "salt every day. In fog the keepers sounded a bell, horn or siren for hours on "
                "end. They also kept a logbook of the weather, passing ships and any wrecks, and "
                "took part in rescues when a vessel ran aground nearby."
            ),
        ],
    ),
    (
        "immune-system",
        "text/html",
        "How vaccines train the immune system",
        "how does a vaccine create immune memory with B cells and T cells",
        [
            (
                "The immune system has two broad branches. The innate system responds within "
                "minutes to hours to anything that looks foreign, with cells that swallow invaders "
                "and signals that cause inflammation. The adaptive system is slower to start but "
                "far more precise: it learns to recognize a particular germ and remembers it for "
                "years."
            ),
            (
                "The adaptive response depends on lymphocytes. B cells make antibodies, proteins "
                "that lock onto a specific shape on a virus or bacterium, called an antigen, and "
                "mark it for destruction or block it from entering cells. T cells come in two main "
                "kinds: helper T cells coordinate the response, and killer T cells destroy the "
                "body's own cells when they have been infected."
            ),
            (
                "A vaccine shows the immune system an antigen without the danger of the disease. "
                "It might contain a killed or weakened germ, a purified protein from its surface, "
                "or genetic instructions such as messenger RNA that tell our cells to make that "
                "protein for a short time. Immune cells collect the antigen, present it to B and T "
                "cells in the lymph nodes, and the few cells that recognize it multiply rapidly."
            ),
            (
                "After the response dies down, some of these cells remain as long-lived memory B "
                "cells and memory T cells. If the real germ arrives later, they recognize it at "
                "once and mount a fast, strong response, often before any symptoms appear. Booster "
                "doses remind the immune system and raise antibody levels again."
            ),
        ],
    ),
    (
        "espresso",
        "text/html",
        "Pulling a shot of espresso",
        "what grind size and brew time make a good espresso shot",
        [
            (
                "Espresso is coffee brewed by forcing hot water through a compact bed of finely "
                "ground beans at high pressure, usually around nine bar. The result is a small, "
                "concentrated drink with a layer of golden foam on top, called crema, formed from "
                "carbon dioxide and oils emulsified under pressure."
            ),
            (
                "A common starting recipe uses eighteen grams of ground coffee to produce about "
                "thirty-six grams of liquid espresso in twenty-five to thirty seconds. Baristas "
                "call this a one to two brew ratio. The water should be between ninety and "
                "ninety-six degrees Celsius. Lighter roasts usually need hotter water and a longer "
                "ratio, and darker roasts the opposite."
            ),
            (
                "Grind size is the main control. If the shot runs too fast, the water passes "
                "through before it can dissolve enough of the coffee, and the espresso tastes "
                "sour, thin and salty: the grind should be finer. If it runs too slowly, too much "
                "is extracted and the shot tastes bitter, dry and harsh: the grind should be "
                "coarser. Changing one variable at a time and tasting each shot is the only "
                "reliable way to dial in a new bag of beans."
            ),
            (
                "Even preparation matters as much as the recipe. The grounds must be distributed "
                "evenly in the basket and tamped level with firm pressure, because water always "
                "finds the easiest path. A crack or a loose patch lets water channel through, so "
                "part of the coffee is overextracted while the rest is barely touched. Fresh "
                "beans, roasted within the last few weeks, give more crema and a sweeter cup."
            ),
            (
                "Cleaning is the last step of a good shot. Coffee oils go rancid quickly, so the "
                "group head is flushed with water after every shot, and the portafilter basket is "
                "rinsed. Once a week the machine is backflushed with a detergent to clear oils "
                "from the valves, and in areas with hard water it must be descaled regularly, "
                "since mineral deposits on the heating element and in the pipes will slowly ruin "
                "the machine."
            ),
        ],
    ),
    (
        "origami",
        "application/pdf",
        "The art of origami",
        "how do origami artists fold a crane from a single square of paper",
        [
            (
                "Origami is the art of folding a single sheet of paper into a shape without "
                "cutting or gluing it. It grew up in Japan, where folded paper was used in "
                "religious ceremonies and for decorating gifts, and the oldest known book of "
                "folding instructions, about linked paper cranes, was printed in 1797."
            ),
            (
                "The crane is the best known model. It begins with a square folded into a "
                "preliminary base, a small square with open flaps at the bottom. Each flap is then "
                "folded into a long narrow point with a petal fold, making the bird base. Two of "
                "the points are reverse folded up inside the body to become the neck and tail, the "
                "tip of one is reverse folded again to form the head, and the two wide flaps are "
                "pulled down as wings."
            ),
            (
                "Modern artists design models with mathematics. By drawing a crease pattern on the "
                "square and treating each flap as a circle or river of paper, they can plan "
                "insects with six legs and antennae, or animals with individual toes, all from one "
                "uncut sheet."
            ),
        ],
    ),
    (
        "photosynthesis",
        "application/pdf",
        "Photosynthesis",
        "how do plants use sunlight to turn carbon dioxide and water into sugar",
        [
            (
                "Photosynthesis is the process by which plants, algae and some bacteria capture "
                "the energy of sunlight and store it in chemical bonds. Using light, they combine "
                "carbon dioxide from the air with water from the soil to make glucose, releasing "
                "oxygen as a by-product. Almost every food chain on Earth depends on it."
            ),
            (
                "In plants the process takes place inside chloroplasts, small green structures "
                "packed into the cells of leaves. The green pigment chlorophyll absorbs red and "
                "blue light strongly and reflects green light, which is why leaves look green to "
                "us."
            ),
            (
                "The first stage, the light-dependent reactions, happens in stacked membranes "
                "called thylakoids. Absorbed light energy is used to split water molecules, which "
                "releases oxygen, and to charge two carrier molecules, ATP and NADPH."
            ),
            (
                "The second stage is the Calvin cycle, which takes place in the fluid around the "
                "thylakoids. Here the enzyme RuBisCO attaches carbon dioxide to a five-carbon "
                "sugar, and the energy from ATP and NADPH turns the products into three-carbon "
                "sugars. Some of these leave the cycle to build glucose, starch and cellulose, "
                "while the rest regenerate the starting sugar so the cycle can continue."
            ),
        ],
    ),
    (
        "silk-road",
        "application/pdf",
        "Trade on the Silk Road",
        "what goods and ideas travelled along the Silk Road between China and Rome",
        [
            (
                "The Silk Road was not a single road but a web of caravan routes that linked China "
                "with Central Asia, Persia, India and the Mediterranean world for more than "
                "fifteen hundred years. It took its name, coined by a German geographer in the "
                "nineteenth century, from the Chinese silk that reached Rome and fascinated its "
                "wealthy citizens."
            ),
            (
                "Few merchants travelled the whole distance. Goods passed from hand to hand "
                "through a chain of trading cities such as Samarkand, Bukhara and Kashgar, with "
                "Sogdian merchants from Central Asia acting as the great middlemen. Caravans of "
                "Bactrian camels crossed deserts like the Taklamakan, resting at oasis towns and "
                "caravanserais along the way."
            ),
            (
                "Silk flowed west, along with porcelain, tea and paper. In the other direction "
                "came horses, glassware, silver, wool and linen, as well as spices and gems from "
                "India. Much of the trade was in luxuries that were light and valuable enough to "
                "be worth carrying thousands of kilometres."
            ),
            (
                "Ideas travelled with the goods. Buddhism spread from India into China along these "
                "routes, followed later by Islam into Central Asia. Papermaking moved west from "
                "China, and the knowledge of new crops, musical instruments and styles of art "
                "passed in both directions. Diseases travelled too, and the Black Death of the "
                "fourteenth century is thought to have spread westward along the trade routes."
            ),
        ],
    ),
    (
        "emperor-penguins",
        "application/pdf",
        "Emperor penguins",
        "how do emperor penguin fathers keep their eggs warm through the Antarctic winter",
        [
            (
                "The emperor penguin is the largest of all penguins, standing over a metre tall "
                "and weighing up to forty kilograms. It is also the only animal that breeds on the "
                "sea ice of Antarctica during the depths of winter, when temperatures fall below "
                "minus forty degrees Celsius and winds blow at two hundred kilometres an hour."
            ),
            (
                "In autumn the penguins walk as far as one hundred kilometres inland across the "
                "ice to their breeding colonies. Each female lays a single egg in May or June and "
                "carefully passes it to her mate before walking back to the sea to feed, having "
                "lost a large part of her body weight."
            ),
            (
                "The male balances the egg on his feet and covers it with a fold of warm, "
                "feathered skin called the brood pouch. For about two months, through the darkest "
                "and coldest part of the year, he stands guard without eating at all. The males "
                "huddle together in tight groups of thousands, slowly shuffling so that each bird "
                "takes turns on the windy edge and in the warm centre."
            ),
            (
                "When the chick hatches in midwinter, the father can even feed it a milky "
                "secretion from his throat until the mother returns with a stomach full of fish. "
                "Then the parents take turns making long trips to the sea to feed their growing "
                "chick."
            ),
        ],
    ),
    (
        "panama-canal",
        "application/pdf",
        "The Panama Canal locks",
        "how do the locks of the Panama Canal lift ships over the isthmus",
        [
            (
                "The Panama Canal cuts across the narrow isthmus that joins North and South "
                "America, letting ships pass between the Atlantic and Pacific oceans without the "
                "long and dangerous voyage around Cape Horn. A French company under Ferdinand de "
                "Lesseps, builder of the Suez Canal, tried first in the 1880s, planning a canal at "
                "sea level. Disease, landslides and bankruptcy ended the attempt after more than "
                "twenty thousand workers had died."
            ),
            (
                "The United States took over in 1904 and chose a different design. Instead of "
                "digging all the way down to sea level, the engineers dammed the Chagres River to "
                "create Gatun Lake, twenty-six metres above the sea, and built locks to lift ships "
                "up to the lake and lower them down again on the other side. Doctors led by "
                "William Gorgas brought yellow fever and malaria under control by draining "
                "standing water and killing mosquitoes. The canal opened in 1914."
            ),
            (
                "A lock is a concrete chamber with massive steel gates at each end. To raise a "
                "ship, the lower gates close behind it and water flows into the chamber from the "
                "lake above through huge culverts in the walls and floor. No pumps are needed: "
                "gravity does all the work. As the chamber fills, the ship floats upward until it "
                "is level with the next chamber, the gates ahead open, and it moves on. Electric "
                "locomotives running on rails along the lock walls, called mules, keep the ship "
                "centred with steel cables."
            ),
            (
                "On the Atlantic side the three Gatun locks raise ships to the lake in one flight. "
                "Ships then cross the lake and pass through the Culebra Cut, a channel blasted and "
                "dug through the continental divide, before descending through the Pedro Miguel "
                "lock and the two Miraflores locks to the Pacific. A full transit takes between "
                "eight and ten hours."
            ),
            (
                "Every ship that passes uses about two hundred million litres of fresh water from "
                "the lake, which flows out to the sea. During droughts the water level in Gatun "
                "Lake falls, and the canal authority has to limit the number and draught of the "
                "ships it lets through. A third, larger set of locks opened in 2016 for the huge "
                "container ships known as Neopanamax vessels. Their chambers have side basins that "
                "store and reuse most of the water for each lockage."
            ),
        ],
    ),
]
