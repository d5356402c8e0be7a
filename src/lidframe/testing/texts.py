"""The sentences :mod:`lidframe.testing` speaks, per language, and the espeak-ng voice of each.

Why real text: a language-identification test needs audio whose true label is known, and gibberish
would test nothing. :data:`TEXTS` holds a few natural sentences per language (Article 1 of the
Universal Declaration of Human Rights and everyday sentences), in the proper script, keyed by the
ISO 639-1 code that Whisper uses. Data only: nothing is imported, nothing runs.
"""

# ruff: noqa: RUF001 - TEXTS is text in Cyrillic, Greek and other scripts, on purpose.

from __future__ import annotations

__all__ = ["TEXTS", "VOICES"]

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
