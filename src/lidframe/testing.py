"""Synthetic labelled speech for tests: users' tests and ours.

Why this shape:

* **espeak-ng, not recordings.** A test suite cannot ship or download a speech corpus, but the
  ``espeak-ng`` command (one ``apt-get install``) speaks over a hundred languages offline. Its
  formant voice is robotic, yet Whisper recognises the language of most of it, which is all a
  language-identification test needs: audio whose true label is known.
* **Real text in each language.** :data:`TEXTS` holds a few natural sentences per language
  (Article 1 of the Universal Declaration of Human Rights and everyday sentences), in the proper
  script, keyed by the ISO 639-1 code that Whisper uses. Gibberish would test nothing.
* **Variety that is deterministic.** :func:`make_corpus` varies sentence, voice variant, speed and
  pitch per clip from a seeded :class:`random.Random`, so a corpus is different enough to be a test
  and identical on every machine with the same espeak-ng.
* **Every container the decoder must handle.** :func:`synthesize` writes WAV, FLAC and Ogg/Vorbis
  with libsndfile and Ogg/Opus and M4A/AAC with the encoders bundled in PyAV, so both decoding paths
  of :mod:`lidframe.audio` get exercised.

Nothing here runs at import time; espeak-ng is looked up when a clip is first synthesized.
"""

# ruff: noqa: RUF001 - TEXTS is text in Cyrillic, Greek and other scripts, on purpose.

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

__all__ = [
    "FORMATS",
    "TEXTS",
    "VOICES",
    "make_corpus",
    "sine",
    "synthesize",
    "write_wav",
]

# Natural sentences per language, keyed by the ISO 639-1 code Whisper uses (``no`` for Norwegian
# Bokmål). Every key is a language that both espeak-ng speaks and Whisper knows.
TEXTS: dict[str, tuple[str, ...]] = {
    "af": (
        "Alle menslike wesens word vry, met gelyke waardigheid en regte, gebore.",
        "Hulle het rede en gewete en behoort in die gees van broederskap teenoor mekaar op te "
        "tree.",
        "Die trein na die stad vertrek elke oggend om halfagt, so ons eet gewoonlik vroeg ontbyt.",
        "My ouma kweek tamaties, boontjies en aarbeie in die klein tuintjie agter haar huis.",
    ),
    "bg": (
        "Всички хора се раждат свободни и равни по достойнство и права.",
        "Те са надарени с разум и съвест и следва да се отнасят помежду си в дух на братство.",
        "Влакът за града тръгва всяка сутрин в седем и половина, затова обикновено закусваме рано.",
        "Баба ми отглежда домати, боб и ягоди в малката градина зад къщата си.",
    ),
    "ca": (
        "Tots els éssers humans neixen lliures i iguals en dignitat i en drets.",
        "Són dotats de raó i de consciència, i han de comportar-se fraternalment els uns amb els "
        "altres.",
        "El tren cap a la ciutat surt cada matí a dos quarts de vuit, així que normalment "
        "esmorzem d'hora.",
        "La meva àvia conrea tomàquets, mongetes i maduixes al petit hort del darrere de casa "
        "seva.",
    ),
    "cs": (
        "Všichni lidé rodí se svobodní a sobě rovní co do důstojnosti a práv.",
        "Jsou nadáni rozumem a svědomím a mají spolu jednat v duchu bratrství.",
        "Vlak do města jede každé ráno v půl osmé, takže obvykle snídáme brzy.",
        "Moje babička pěstuje rajčata, fazole a jahody na malé zahrádce za svým domem.",
    ),
    "cy": (
        "Genir pawb yn rhydd ac yn gydradd â'i gilydd mewn urddas a hawliau.",
        "Fe'u cynysgaeddir â rheswm a chydwybod, a dylai pawb ymddwyn y naill at y llall mewn "
        "ysbryd cymodlon.",
        "Mae'r trên i'r dref yn gadael bob bore am hanner awr wedi saith, felly rydyn ni fel "
        "arfer yn cael brecwast yn gynnar.",
        "Mae fy nain yn tyfu tomatos, ffa a mefus yn yr ardd fach y tu ôl i'w thŷ.",
    ),
    "da": (
        "Alle mennesker er født frie og lige i værdighed og rettigheder.",
        "De er udstyret med fornuft og samvittighed, og de bør handle mod hverandre i en "
        "broderskabets ånd.",
        "Toget til byen kører hver morgen klokken halv otte, så vi spiser som regel morgenmad "
        "tidligt.",
        "Min mormor dyrker tomater, bønner og jordbær i den lille have bag sit hus.",
    ),
    "de": (
        "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
        "Sie sind mit Vernunft und Gewissen begabt und sollen einander im Geist der "
        "Brüderlichkeit begegnen.",
        "Der Zug in die Stadt fährt jeden Morgen um halb acht, deshalb frühstücken wir meistens "
        "früh.",
        "Meine Großmutter baut in dem kleinen Garten hinter ihrem Haus Tomaten, Bohnen und "
        "Erdbeeren an.",
    ),
    "el": (
        "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα.",
        "Είναι προικισμένοι με λογική και συνείδηση, και οφείλουν να συμπεριφέρονται μεταξύ τους "
        "με πνεύμα αδελφοσύνης.",
        "Το τρένο για την πόλη φεύγει κάθε πρωί στις επτάμισι, γι' αυτό συνήθως τρώμε πρωινό "
        "νωρίς.",
        "Η γιαγιά μου καλλιεργεί ντομάτες, φασόλια και φράουλες στον μικρό κήπο πίσω από το σπίτι "
        "της.",
    ),
    "en": (
        "All human beings are born free and equal in dignity and rights.",
        "They are endowed with reason and conscience and should act towards one another in a "
        "spirit of brotherhood.",
        "The train to the city leaves every morning at half past seven, so we usually have "
        "breakfast early.",
        "My grandmother grows tomatoes, beans and strawberries in the small garden behind her "
        "house.",
    ),
    "es": (
        "Todos los seres humanos nacen libres e iguales en dignidad y derechos.",
        "Dotados como están de razón y conciencia, deben comportarse fraternalmente los unos con "
        "los otros.",
        "El tren a la ciudad sale cada mañana a las siete y media, así que solemos desayunar "
        "temprano.",
        "Mi abuela cultiva tomates, judías y fresas en el pequeño huerto detrás de su casa.",
    ),
    "et": (
        "Neile on antud mõistus ja südametunnistus ja nende suhtumist üksteisesse peab kandma "
        "vendluse vaim.",
        "Rong linna väljub igal hommikul kell pool kaheksa, nii et me sööme tavaliselt varakult "
        "hommikusööki.",
        "Minu vanaema kasvatab oma maja taga väikeses aias tomateid, ube ja maasikaid.",
        "Täna õhtul läheme sõpradega kinno, aga enne pean ma oma kodutöö lõpetama.",
    ),
    "fi": (
        "Julistuksen mukaan kaikki ihmiset syntyvät vapaina ja tasavertaisina arvoltaan ja "
        "oikeuksiltaan.",
        "Heille on annettu järki ja omatunto, ja heidän on toimittava toisiaan kohtaan veljeyden "
        "hengessä.",
        "Juna kaupunkiin lähtee joka aamu puoli kahdeksalta, joten syömme yleensä aamiaisen "
        "aikaisin kotona.",
        "Isoäitini kasvattaa tomaatteja, papuja ja mansikoita pienessä puutarhassa talonsa takana.",
    ),
    "fr": (
        "Tous les êtres humains naissent libres et égaux en dignité et en droits, quelle que soit "
        "leur origine.",
        "Ils sont doués de raison et de conscience et doivent agir les uns envers les autres dans "
        "un esprit de fraternité.",
        "Le train pour la ville part chaque matin à sept heures et demie, alors nous prenons le "
        "petit déjeuner tôt.",
        "Ma grand-mère cultive des tomates, des haricots et des fraises dans le petit jardin "
        "derrière sa maison.",
    ),
    "hi": (
        "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है।",
        "उन्हें बुद्धि और अन्तरात्मा की देन प्राप्त है और परस्पर उन्हें भाईचारे के भाव से बर्ताव करना चाहिए।",
        "शहर जाने वाली ट्रेन हर सुबह साढ़े सात बजे निकलती है, इसलिए हम आमतौर पर जल्दी नाश्ता करते हैं।",
        "मेरी दादी अपने घर के पीछे छोटे से बगीचे में टमाटर, बीन्स और स्ट्रॉबेरी उगाती हैं।",
    ),
    "hr": (
        "Sva ljudska bića rađaju se slobodna i jednaka u dostojanstvu i pravima.",
        "Ona su obdarena razumom i sviješću pa jedna prema drugima trebaju postupati u duhu "
        "bratstva.",
        "Vlak za grad polazi svako jutro u pola osam, pa obično rano doručkujemo kod kuće.",
        "Moja baka uzgaja rajčice, grah i jagode u malom vrtu iza svoje kuće.",
    ),
    "hu": (
        "Minden emberi lény szabadon születik és egyenlő méltósága és joga van.",
        "Ma este a barátaimmal moziba megyünk, de előbb be kell fejeznem a házi feladatomat.",
        "A vonat minden reggel fél nyolckor indul a városba, ezért általában korán reggelizünk.",
        "A nagymamám paradicsomot, babot és epret termeszt a háza mögötti kis kertben.",
    ),
    "id": (
        "Semua orang dilahirkan merdeka dan mempunyai martabat dan hak-hak yang sama.",
        "Mereka dikaruniai akal dan hati nurani dan hendaknya bergaul satu sama lain dalam "
        "semangat persaudaraan.",
        "Kereta ke kota berangkat setiap pagi pukul setengah delapan, jadi kami biasanya sarapan "
        "lebih awal.",
        "Nenek saya menanam tomat, kacang, dan stroberi di kebun kecil di belakang rumahnya.",
    ),
    "is": (
        "Hver maður er borinn frjáls og jafn öðrum að virðingu og réttindum.",
        "Menn eru gæddir vitsmunum og samvisku, og ber þeim að breyta bróðurlega hverjum við "
        "annan.",
        "Strætó í bæinn fer á hverjum morgni klukkan hálf átta, svo við borðum yfirleitt "
        "morgunmat snemma.",
        "Amma mín ræktar tómata, baunir og jarðarber í litla garðinum á bak við húsið sitt.",
    ),
    "it": (
        "Tutti gli esseri umani nascono liberi ed eguali in dignità e diritti.",
        "Essi sono dotati di ragione e di coscienza e devono agire gli uni verso gli altri in "
        "spirito di fratellanza.",
        "Il treno per la città parte ogni mattina alle sette e mezza, quindi di solito facciamo "
        "colazione presto.",
        "Mia nonna coltiva pomodori, fagioli e fragole nel piccolo orto dietro la sua casa.",
    ),
    "lt": (
        "Jiems suteiktas protas ir sąžinė ir jie turi elgtis vienas kito atžvilgiu kaip broliai.",
        "Traukinys į miestą išvyksta kiekvieną rytą pusę aštuonių, todėl paprastai pusryčiaujame "
        "anksti namuose.",
        "Mano močiutė augina pomidorus, pupeles ir braškes mažame sode už savo namo.",
        "Šį vakarą mes su draugais eisime į kiną, bet pirmiausia turiu baigti namų darbus.",
    ),
    "lv": (
        "Viņi ir apveltīti ar saprātu un sirdsapziņu, un viņiem jāizturas citam pret citu "
        "brālības garā.",
        "Vilciens uz pilsētu atiet katru rītu pusastoņos, tāpēc mēs parasti brokastojam agri "
        "mājās.",
        "Mana vecmāmiņa audzē tomātus, pupas un zemenes mazajā dārzā aiz savas mājas.",
        "Šovakar mēs ar draugiem iesim uz kino, bet vispirms man jāpabeidz mājasdarbs.",
    ),
    "nl": (
        "Alle mensen worden vrij en gelijk in waardigheid en rechten geboren.",
        "Zij zijn begiftigd met verstand en geweten, en behoren zich jegens elkander in een geest "
        "van broederschap te gedragen.",
        "De trein naar de stad vertrekt elke ochtend om half acht, dus we ontbijten meestal vroeg.",
        "Mijn oma kweekt tomaten, bonen en aardbeien in het kleine tuintje achter haar huis.",
    ),
    "no": (
        "Alle mennesker er født frie og med samme menneskeverd og menneskerettigheter.",
        "De er utstyrt med fornuft og samvittighet og bør handle mot hverandre i brorskapets ånd.",
        "Toget til byen går hver morgen klokka halv åtte, så vi spiser vanligvis frokost tidlig.",
        "Bestemoren min dyrker tomater, bønner og jordbær i den lille hagen bak huset sitt.",
    ),
    "pl": (
        "Wszyscy ludzie rodzą się wolni i równi pod względem swej godności i swych praw.",
        "Są oni obdarzeni rozumem i sumieniem i powinni postępować wobec innych w duchu "
        "braterstwa.",
        "Pociąg do miasta odjeżdża każdego ranka o wpół do ósmej, więc zwykle jemy śniadanie "
        "wcześnie.",
        "Moja babcia uprawia pomidory, fasolę i truskawki w małym ogródku za swoim domem.",
    ),
    "pt": (
        "Todos os seres humanos nascem livres e iguais em dignidade e em direitos.",
        "Dotados de razão e de consciência, devem agir uns para com os outros em espírito de "
        "fraternidade.",
        "O comboio para a cidade parte todas as manhãs às sete e meia, por isso tomamos o "
        "pequeno-almoço cedo.",
        "A minha avó cultiva tomates, feijão e morangos no pequeno quintal atrás da sua casa.",
    ),
    "ro": (
        "Toate ființele umane se nasc libere și egale în demnitate și în drepturi.",
        "Ele sunt înzestrate cu rațiune și conștiință și trebuie să se comporte unele față de "
        "altele în spiritul fraternității.",
        "Trenul spre oraș pleacă în fiecare dimineață la șapte și jumătate, așa că de obicei luăm "
        "micul dejun devreme.",
        "Bunica mea cultivă roșii, fasole și căpșuni în grădina mică din spatele casei.",
    ),
    "ru": (
        "Все люди рождаются свободными и равными в своём достоинстве и правах.",
        "Они наделены разумом и совестью и должны поступать в отношении друг друга в духе "
        "братства.",
        "Поезд в город отправляется каждое утро в половине восьмого, поэтому мы обычно рано "
        "завтракаем.",
        "Моя бабушка выращивает помидоры, фасоль и клубнику в маленьком саду за своим домом.",
    ),
    "sk": (
        "Všetci ľudia sa rodia slobodní a sebe rovní, čo sa týka ich dôstojnosti a práv.",
        "Sú obdarení rozumom a svedomím a majú spolu navzájom jednať v bratskom duchu.",
        "Vlak do mesta odchádza každé ráno o pol ôsmej, takže zvyčajne raňajkujeme skoro.",
        "Moja stará mama pestuje paradajky, fazuľu a jahody v malej záhradke za svojím domom.",
    ),
    "sl": (
        "Vsi ljudje se rodijo svobodni in imajo enako dostojanstvo in enake pravice.",
        "Obdarjeni so z razumom in vestjo in bi morali ravnati drug z drugim kakor bratje.",
        "Vlak v mesto odpelje vsako jutro ob pol osmih, zato običajno zgodaj zajtrkujemo.",
        "Moja babica goji paradižnik, fižol in jagode na majhnem vrtu za svojo hišo.",
    ),
    "sv": (
        "Alla människor är födda fria och lika i värde och rättigheter.",
        "De har utrustats med förnuft och samvete och bör handla gentemot varandra i en anda av "
        "broderskap.",
        "Tåget till staden går varje morgon klockan halv åtta, så vi äter oftast frukost tidigt.",
        "Min mormor odlar tomater, bönor och jordgubbar i den lilla trädgården bakom sitt hus.",
    ),
    "sw": (
        "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa. Wote wamejaliwa akili na dhamiri, "
        "hivyo yapasa watendeane kindugu.",
        "Treni ya kwenda mjini huondoka kila asubuhi saa moja na nusu, kwa hiyo kwa kawaida "
        "tunakula kifungua kinywa mapema.",
        "Bibi yangu hupanda nyanya, maharagwe na stroberi katika bustani ndogo nyuma ya nyumba "
        "yake.",
        "Leo jioni nitakwenda sokoni kununua matunda, mkate na maziwa kwa ajili ya familia yangu.",
    ),
    "tr": (
        "Akıl ve vicdana sahiptirler ve birbirlerine karşı kardeşlik zihniyeti ile hareket "
        "etmelidirler.",
        "Şehre giden tren her sabah yedi buçukta kalkıyor, bu yüzden genellikle erken kahvaltı "
        "yapıyoruz.",
        "Büyükannem evinin arkasındaki küçük bahçede domates, fasulye ve çilek yetiştiriyor.",
        "Bu akşam arkadaşlarımla birlikte sinemaya gideceğim, ama önce ödevlerimi bitirmem "
        "gerekiyor.",
    ),
    "uk": (
        "Всі люди народжуються вільними і рівними у своїй гідності та правах.",
        "Вони наділені розумом і совістю і повинні діяти у відношенні один до одного в дусі "
        "братерства.",
        "Потяг до міста вирушає щоранку о пів на восьму, тому ми зазвичай снідаємо рано.",
        "Моя бабуся вирощує помідори, квасолю та полуницю в маленькому саду за своїм будинком.",
    ),
    "vi": (
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và quyền lợi.",
        "Mọi con người đều được tạo hóa ban cho lý trí và lương tâm và cần phải đối xử với nhau "
        "trong tình anh em.",
        "Tàu vào thành phố khởi hành lúc bảy giờ rưỡi mỗi sáng, vì vậy chúng tôi thường ăn sáng "
        "sớm.",
        "Bà tôi trồng cà chua, đậu và dâu tây trong khu vườn nhỏ phía sau nhà.",
    ),
}

# The espeak-ng voice that speaks each language of TEXTS (``espeak-ng --voices`` lists them).
VOICES: dict[str, str] = {lang: lang for lang in TEXTS} | {
    "en": "en-us",
    "fr": "fr-fr",
    "no": "nb",
}

# File extensions synthesize() can write, and what writes them.
FORMATS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".opus", ".m4a")

_SOUNDFILE_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}
# (PyAV container format, encoder, bit rate): small files that still sound like speech.
_PYAV_FORMATS = {
    ".opus": ("ogg", "libopus", 24_000),
    ".m4a": ("ipod", "aac", 32_000),
}
_DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
_ESPEAK_TIMEOUT = 60.0


def synthesize(
    text: str,
    voice: str,
    path: str | Path,
    *,
    speed: int = 160,
    pitch: int = 50,
    variant: str | None = None,
    sample_rate: int = 16_000,
    fmt: str | None = None,
    noise_db: float | None = None,
    noise_seed: int = 0,
) -> float:
    """Speak ``text`` with espeak-ng and write it to ``path``; return its duration in seconds.

    ``voice`` is an espeak-ng voice (``nb``, ``en-us``) or a key of :data:`TEXTS` (``no``, ``en``),
    which is mapped through :data:`VOICES`. ``variant`` is an espeak-ng voice variant such as ``f3``
    or ``m2``; ``speed`` is in words per minute and ``pitch`` is 0-99. The audio is mono, resampled
    to ``sample_rate``, and written in the format of ``fmt`` or else of the extension of ``path``:
    one of :data:`FORMATS`.

    ``noise_db`` adds white noise that many decibels below full scale (``-40`` is a quiet room),
    drawn from a generator seeded with ``noise_seed`` so the file is still reproducible. espeak-ng
    leaves exact digital silence between words, which real recordings never have; a little noise
    makes Whisper misjudge the language of synthetic speech less often.
    """
    path = Path(path)
    suffix = _normalise_format(fmt if fmt is not None else path.suffix)
    samples, rate = _espeak(text, VOICES.get(voice, voice), speed, pitch, variant)
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32)
    if noise_db is not None:
        noise = np.random.default_rng(noise_seed).standard_normal(samples.shape[0])
        samples = samples + (noise * 10.0 ** (noise_db / 20.0)).astype(np.float32)
    # Resampling (and noise) can overshoot full scale a little; the encoders want [-1, 1].
    samples = np.clip(samples, -1.0, 1.0)
    _write(path, suffix, samples, sample_rate)
    return samples.shape[0] / sample_rate


def make_corpus(
    out_dir: str | Path,
    languages: Iterable[str] | None = None,
    per_language: int = 4,
    *,
    seed: int = 0,
    formats: Sequence[str] = (".wav",),
    voices_variants: Sequence[str | None] = _DEFAULT_VARIANTS,
    start_index: int = 0,
    speed_range: tuple[int, int] = (130, 190),
    pitch_range: tuple[int, int] = (30, 70),
    sample_rate: int = 16_000,
    noise_db: float | None = None,
) -> pd.DataFrame:
    """Write ``per_language`` spoken clips for each language into ``out_dir``; return their table.

    ``languages`` are keys of :data:`TEXTS` (all of them by default). Clip ``i`` of language
    ``xx`` is ``xx-{i:03d}`` for ``i`` from ``start_index``; its voice variant, speed (words per
    minute, within ``speed_range``) and pitch (within ``pitch_range``) come from a
    :class:`random.Random` seeded with ``seed``, the language and ``i``, so a clip is the same
    whichever other languages or indices are asked for. Sentences rotate through the language's
    texts from a seeded starting point. File formats cycle through ``formats`` in the order clips
    are written. ``noise_db`` is passed to :func:`synthesize`, with a noise seed drawn per clip.

    Returns a DataFrame with columns ``id``, ``audio`` (file name relative to ``out_dir``) and
    ``label`` (the language key), one row per clip in the order written.
    """
    out = Path(out_dir)
    langs = list(TEXTS) if languages is None else list(languages)
    unknown = [lang for lang in langs if lang not in TEXTS]
    if unknown:
        raise ValueError(f"no texts for languages {unknown}; known: {sorted(TEXTS)}")
    if per_language < 0:
        raise ValueError(f"per_language must be >= 0, got {per_language}")
    suffixes = [_normalise_format(f) for f in formats]
    if not suffixes:
        raise ValueError("formats must name at least one format")
    if not voices_variants:
        raise ValueError("voices_variants must name at least one variant (None: the plain voice)")
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, str]] = []
    for lang in langs:
        texts = TEXTS[lang]
        # Which sentence comes first differs per language; then sentences rotate so that a few
        # clips of one language cover different sentences.
        first = random.Random(f"{seed}:{lang}").randrange(len(texts))
        for index in range(start_index, start_index + per_language):
            rng = random.Random(f"{seed}:{lang}:{index}")
            variant = rng.choice(list(voices_variants))
            speed = rng.randint(*speed_range)
            pitch = rng.randint(*pitch_range)
            noise_seed = rng.randrange(2**32)
            suffix = suffixes[len(rows) % len(suffixes)]
            clip_id = f"{lang}-{index:03d}"
            name = f"{clip_id}{suffix}"
            synthesize(
                texts[(first + index) % len(texts)],
                VOICES[lang],
                out / name,
                speed=speed,
                pitch=pitch,
                variant=variant,
                sample_rate=sample_rate,
                noise_db=noise_db,
                noise_seed=noise_seed,
            )
            rows.append({"id": clip_id, "audio": name, "label": lang})
    return pd.DataFrame(rows, columns=["id", "audio", "label"])


def sine(seconds: float, sample_rate: int = 16_000, freq: float = 440.0) -> np.ndarray:
    """A float32 sine tone at half full scale: audio that is certainly not speech."""
    t = np.arange(round(seconds * sample_rate), dtype=np.float64) / sample_rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(
    path: str | Path, samples: np.ndarray, sample_rate: int = 16_000, channels: int = 1
) -> None:
    """Write mono ``samples`` as 16-bit WAV, the same signal on each of ``channels`` channels."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim != 1:
        raise ValueError(f"samples must be one-dimensional, got shape {data.shape}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if channels > 1:
        data = np.repeat(data[:, None], channels, axis=1)
    sf.write(str(path), data, sample_rate, format="WAV", subtype="PCM_16")


def _normalise_format(fmt: str) -> str:
    suffix = fmt.lower() if fmt.startswith(".") else f".{fmt.lower()}"
    if suffix not in FORMATS:
        raise ValueError(f"cannot write audio format {fmt!r}; supported: {', '.join(FORMATS)}")
    return suffix


def _espeak(
    text: str, voice: str, speed: int, pitch: int, variant: str | None
) -> tuple[np.ndarray, int]:
    """Run espeak-ng on ``text``; return mono float32 samples and their sample rate."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(
            "espeak-ng is not installed or not on PATH; lidframe.testing needs it to synthesize "
            "speech: install it with `apt-get install espeak-ng` (Debian/Ubuntu), "
            "`brew install espeak-ng` (macOS) or `conda install -c conda-forge espeak-ng`"
        )
    spoken = f"{voice}+{variant}" if variant else voice
    with tempfile.TemporaryDirectory(prefix="lidframe-espeak-") as tmp:
        wav = Path(tmp) / "speech.wav"
        # -b 1: the text is UTF-8. "--" ends the options, so text starting with "-" is still text.
        cmd = [
            exe,
            "-b",
            "1",
            "-v",
            spoken,
            "-s",
            str(int(speed)),
            "-p",
            str(int(pitch)),
            "-w",
            str(wav),
            "--",
            text,
        ]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=_ESPEAK_TIMEOUT)
        except subprocess.CalledProcessError as exc:
            message = (exc.stderr or b"").decode("utf-8", "replace").strip()
            raise RuntimeError(f"espeak-ng failed for voice {spoken!r}: {message}") from exc
        data, rate = sf.read(io.BytesIO(wav.read_bytes()), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise RuntimeError(f"espeak-ng produced no audio for voice {spoken!r} and text {text!r}")
    return data.mean(axis=1), int(rate)


def _write(path: Path, suffix: str, samples: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in _SOUNDFILE_FORMATS:
        container, subtype = _SOUNDFILE_FORMATS[suffix]
        sf.write(str(path), samples, sample_rate, format=container, subtype=subtype)
        return
    _write_pyav(path, suffix, samples, sample_rate)


def _write_pyav(path: Path, suffix: str, samples: np.ndarray, sample_rate: int) -> None:
    """Encode mono float32 ``samples`` with an encoder bundled in PyAV (Opus, AAC)."""
    import av  # imported lazily, like lidframe.audio does

    container_format, codec, bit_rate = _PYAV_FORMATS[suffix]
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = sample_rate
    frame.pts = 0
    # bitexact: no random Ogg serial number nor encoder version tag: same input, same bytes.
    with av.open(
        str(path), mode="w", format=container_format, options={"fflags": "+bitexact"}
    ) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.bit_rate = bit_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
